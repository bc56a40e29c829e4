from __future__ import annotations

from shared.settings import Common


class GatewaySettings(Common, frozen=True, kw_only=True):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Base URL clients use to reach this gateway (for wsUrl); taken from the request if empty.
    gateway_public_url: str = ""
    max_body_bytes: int = 16_384
    database_schema: str = "public"
    db_pool_size: int = 10
    #: How long a stream for an order with no events waits before closing with 4404.
    unknown_order_wait_s: float = 10.0
    #: Requests per key per window, counted across every replica (a key's record may override).
    submit_rate_limit: int = 20  # POST and DELETE
    read_rate_limit: int = 100  # GET and stream upgrades
    rate_limit_window_s: int = 1
    #: Open WebSocket streams per key on one replica.
    max_streams_per_key: int = 100
    #: How long a key record is trusted before it is read again (the delay of a revocation).
    key_cache_ttl_s: float = 5.0
