"""CORS is off unless origins are listed; then it answers those origins only."""

from services.gateway.app import create_app
from services.gateway.browser import cors
from services.gateway.settings import GatewaySettings


def test_cors_is_off_by_default():
    assert create_app(GatewaySettings()).cors_config is None


def test_listed_origins_get_the_api_headers_and_see_the_rate_limit_headers():
    settings = GatewaySettings(cors_allow_origins=" https://a.example, https://b.example ,")
    config = cors(settings.allowed_origins())
    assert config is not None and config.allow_origins == ["https://a.example", "https://b.example"]
    assert {"authorization", "x-api-key", "content-type"} == set(config.allow_headers)
    assert "Retry-After" in config.expose_headers and "RateLimit-Remaining" in config.expose_headers
    assert config.is_origin_allowed("https://a.example") and not config.is_origin_allowed("https://evil.example")
