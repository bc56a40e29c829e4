"""Prometheus metrics of every service. Each series carries the `service` label."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

_service = "unknown"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def set_service(name: str) -> None:
    global _service
    _service = name


def service() -> str:
    return _service


def bound(metric, *labels: str):
    """The child of ``metric`` for this service and ``labels``, looked up once.

    ``metric.labels(...)`` takes a lock and builds the label tuple on every call; hot paths
    use this instead, which returns the same child from a cache after the first call.
    """
    return _child(metric, _service, labels)


@functools.cache
def _child(metric, service_name: str, labels: tuple[str, ...]):
    return metric.labels(service_name, *labels)


HTTP_REQUESTS = Counter("engine_http_requests", "HTTP requests served", ["service", "method", "route", "status"])
HTTP_DURATION = Histogram(
    "engine_http_request_duration_seconds", "HTTP request duration", ["service", "route"], buckets=LATENCY_BUCKETS
)
ORDERS_ACCEPTED = Counter("engine_orders_accepted", "Orders accepted", ["service", "order_type"])
WS_CONNECTIONS = Gauge("engine_ws_connections", "Open WebSocket connections", ["service"])
WS_MESSAGES = Counter("engine_ws_messages_sent", "WebSocket messages sent", ["service"])
LIVE_SUBSCRIPTIONS = Gauge(
    "engine_live_subscriptions", "Live subscriptions a gateway holds for its streams (kind: orders, quotes)",
    ["service", "kind"],
)
LIVE_EVENTS_RECOVERED = Counter(
    "engine_live_events_recovered", "Events a stream read from the log because their live message never came",
    ["service"],
)
EVENTS_HANDLED = Counter("engine_events_handled", "Consumed events by outcome", ["service", "event", "outcome"])
EVENT_DURATION = Histogram(
    "engine_event_handle_duration_seconds", "Time to handle one event", ["service", "event"], buckets=LATENCY_BUCKETS
)
EVENTS_APPENDED = Counter("engine_events_appended", "Events appended to the log", ["service", "event"])
STALE_READS = Counter(
    "engine_stale_reads", "Reads of an order answered by a replica behind an event known to be stored", ["service"]
)
APPEND_CONFLICTS = Counter("engine_append_conflicts", "Appends refused by optimistic concurrency", ["service"])
ORDERS_TERMINAL = Counter("engine_orders_terminal", "Orders reaching a terminal status", ["service", "status"])
ORDER_DURATION = Histogram(
    "engine_order_duration_seconds", "Accepted to terminal", ["service"], buckets=LATENCY_BUCKETS
)
EXECUTION_ATTEMPTS = Counter("engine_execution_attempts", "Transaction attempts by outcome", ["service", "outcome"])
ROUTES_SELECTED = Counter("engine_routes_selected", "Routing decisions by venue", ["service", "venue"])
QUOTE_DURATION = Histogram("engine_quote_duration_seconds", "Time to quote all venues", ["service"], buckets=LATENCY_BUCKETS)
EVENTS_DEAD_LETTERED = Counter(
    "engine_events_dead_lettered", "Events parked after their last failed delivery", ["service", "consumer"]
)
CONSUMER_PENDING = Gauge("engine_consumer_pending_messages", "Messages not yet delivered", ["service", "consumer"])
PROJECTOR_BATCH = Histogram(
    "engine_projector_batch_size", "Events per projector batch", ["service"], buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
PROJECTOR_LAG = Gauge("engine_projector_lag_seconds", "Age of the newest projected event when applied", ["service"])
READ_MODEL_AVAILABLE = Gauge(
    "engine_read_model_available", "1 while the read model (PostgreSQL) answers the gateway's reads, else 0", ["service"]
)
RESTING_ORDERS = Gauge("engine_resting_orders", "Limit and sniper orders resting in the book", ["service"])
TRIGGER_TICK = Histogram(
    "engine_trigger_tick_seconds", "Time to find and schedule the resting orders a slot fires", ["service"],
    buckets=LATENCY_BUCKETS,
)
RESUME_NUDGES = Counter("engine_resume_nudges", "Resume nudges sent to the owner of a stalled order", ["service", "role"])
STREAM_BYTES = Gauge("engine_stream_bytes", "Bytes a stream stores", ["service", "stream"])
STREAM_MESSAGES = Gauge("engine_stream_messages", "Messages a stream stores", ["service", "stream"])
STREAM_FIRST_AGE = Gauge(
    "engine_stream_first_message_age_seconds", "Age of the oldest message a stream still holds", ["service", "stream"]
)
STREAM_MAX_BYTES = Gauge("engine_stream_max_bytes", "A stream's byte limit (-1: none)", ["service", "stream"])
STREAM_MAX_AGE = Gauge("engine_stream_max_age_seconds", "A stream's age limit (-1: none)", ["service", "stream"])
OLDEST_RESTING = Gauge(
    "engine_oldest_resting_order_age_seconds", "Time since the oldest resting order was accepted", ["service"]
)
BOOK_REARM = Gauge(
    "engine_book_rearm_seconds", "Time the router took to re-arm its book at start", ["service", "source"]
)
