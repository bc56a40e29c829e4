from __future__ import annotations

from shared.settings import DEFAULT_DATABASE_URL, Common


class GatewaySettings(Common, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str = "public"  # the schema the read-model tables live in
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Health, readiness and /metrics, off the public port (as router, executor, projector).
    ops_port: int = 9100
    #: Base URL clients use to reach this gateway (for wsUrl); taken from the request if empty.
    gateway_public_url: str = ""
    #: Browser origins allowed to call the API (comma-separated); empty: no CORS at all.
    cors_allow_origins: str = ""
    max_body_bytes: int = 16_384
    #: Request line and headers together (431 beyond), and the request target alone (414).
    max_header_bytes: int = 8_192
    max_target_bytes: int = 2_048
    #: A request's headers must arrive within this of its first byte (or of the connection
    #: opening), and its body within this of the headers; otherwise 408 and close.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    #: Largest WebSocket message a client may send (closed with 1009 beyond); the streams
    #: expect nothing from clients, so this only bounds what a client can make us buffer.
    ws_max_message_bytes: int = 4_096
    db_pool_size: int = 10
    #: A read of the read model (waiting for a connection, connecting, the query) gives up
    #: after this: 503, or the event log's answer for one order.
    read_model_timeout_s: float = 0.8
    #: After a failed read, reads skip PostgreSQL for this long, then one tries it again.
    read_model_retry_s: float = 2.0
    #: New orders are refused (503) while the order log is within this fraction of its byte
    #: limit, so the orders already accepted keep room to finish.
    log_intake_reserve: float = 0.05
    #: How long a stream for an order with no events waits before closing with 4404.
    unknown_order_wait_s: float = 10.0
    #: A watched order the gateway hears nothing of is checked against the log (for a live
    #: message lost without a reconnect or slow-consumer error to tell) after this, then
    #: after twice as long each quiet check, up to the maximum (`services.gateway.live`).
    stream_idle_check_s: float = 3.0
    stream_idle_check_max_s: float = 60.0
    #: Requests per key per window, counted across every replica (a key's record may override).
    submit_rate_limit: int = 20  # POST and DELETE
    read_rate_limit: int = 100  # GET and stream upgrades
    rate_limit_window_s: int = 1
    #: Open WebSocket streams per key on one replica.
    max_streams_per_key: int = 100
    #: An order exists only if the log stores it within this of its submission (the event's
    #: acceptBy); until then the POST waits for the log's acknowledgement. Keep it below
    #: the clients' own timeouts: a POST may take it plus the two below.
    accept_timeout_ms: int = 3_000
    #: When the log has not confirmed by the deadline: how long past it to wait (the clock
    #: skew tolerated between gateway and NATS), and how long to wait for reading the log.
    accept_clock_margin_ms: int = 500
    accept_check_timeout_ms: int = 1_000
    #: How long a key record is trusted before it is read again (the delay of a revocation).
    key_cache_ttl_s: float = 5.0

    def allowed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]
