"""CORS is off unless origins are listed; then it answers those origins only."""

from services.gateway.app import create_app
from services.gateway.browser import cors, security_headers
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


async def _headers(path: str) -> dict[bytes, bytes]:
    message = {"type": "http.response.start", "status": 200, "headers": []}
    await security_headers(message, {"type": "http", "path": path})
    return dict(message["headers"])


async def test_the_api_keeps_a_csp_that_loads_nothing():
    for path in ("/api/orders", "/health", "/api/quotes"):
        assert (await _headers(path))[b"content-security-policy"] == b"default-src 'none'; frame-ancestors 'none'", path


async def test_the_console_may_load_and_connect_to_its_own_origin_only_and_never_be_framed():
    for path in ("/", "/console/app.js", "/console/console.css"):
        headers = await _headers(path)
        policy = headers[b"content-security-policy"].decode()
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'", path
        assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'", path
        assert directives["frame-ancestors"] == "'none'" and headers[b"x-frame-options"] == b"DENY", path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
