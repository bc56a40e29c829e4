from __future__ import annotations

from shared.settings import DEFAULT_DATABASE_URL, Common


class GatewaySettings(Common, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str = "public"  # the schema the read-model tables live in
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Base URL clients use to reach this gateway (for wsUrl); taken from the request if empty.
    gateway_public_url: str = ""
    max_body_bytes: int = 16_384
    db_pool_size: int = 10
    #: How long a stream for an order with no events waits before closing with 4404.
    unknown_order_wait_s: float = 10.0
