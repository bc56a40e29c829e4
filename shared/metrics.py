"""Prometheus metrics of every service. Each series carries the `service` label."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Iterator

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


@contextlib.contextmanager
def timed(metric, *labels: str) -> Iterator[None]:
    """Observe the block's duration in histogram `metric`, whether it returns or raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        bound(metric, *labels).observe(time.perf_counter() - started)


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
# Counted once per order by the projector's fold (every terminal status, whoever appended it).
ORDERS_TERMINAL = Counter(
    "engine_orders_terminal", "Orders reaching a terminal status (code: the failure code, none when confirmed)",
    ["service", "status", "order_type", "code"],
)
ORDER_DURATION = Histogram(
    "engine_order_duration_seconds", "Accepted to terminal (a resting order's rest included)", ["service", "order_type"],
    buckets=LATENCY_BUCKETS,
)
#: Longer buckets than LATENCY_BUCKETS: a resting order may rest for days.
STAGE_BUCKETS = (*LATENCY_BUCKETS, 300, 3600, 86_400, 2_592_000)
STAGE_DURATION = Histogram(
    "engine_order_stage_duration_seconds",
    "Time an order spent in one stage, from its events' own timestamps (stage: accepted_to_routed, "
    "routed_to_submitted, submitted_to_terminal, resting)",
    ["service", "stage", "order_type"], buckets=STAGE_BUCKETS,
)
EXECUTION_ATTEMPTS = Counter(
    "engine_execution_attempts", "Transaction attempts by outcome and reason (the failure kind or code)",
    ["service", "outcome", "reason"],
)
ROUTES_SELECTED = Counter("engine_routes_selected", "Routing decisions by venue", ["service", "venue"])
QUOTE_DURATION = Histogram("engine_quote_duration_seconds", "Time to quote all venues", ["service"], buckets=LATENCY_BUCKETS)
EVENTS_DEAD_LETTERED = Counter(
    "engine_events_dead_lettered", "Events parked after their last failed delivery", ["service", "consumer"]
)
CONSUMER_PENDING = Gauge(
    "engine_consumer_pending_messages", "Messages not yet delivered", ["service", "stream", "consumer"]
)
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
# Read from the server by each consume loop every few seconds (replicas report alike: max by).
CONSUMER_ACK_PENDING = Gauge(
    "engine_consumer_ack_pending_messages", "Messages a durable consumer delivered and awaits the ack of",
    ["service", "stream", "consumer"],
)
CONSUMER_MAX_ACK_PENDING = Gauge(
    "engine_consumer_max_ack_pending", "A durable consumer's limit on messages awaiting an ack (-1: none)",
    ["service", "stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "engine_consumer_redelivered_messages", "Messages a durable consumer has delivered more than once and not acked",
    ["service", "stream", "consumer"],
)
DB_POOL_CONNECTIONS = Gauge(
    "engine_db_pool_connections", "PostgreSQL pool connections (state: open, in_use, max)", ["service", "state"]
)
DB_QUERY_DURATION = Histogram(
    "engine_db_query_duration_seconds", "Time of one read-model query or write, connection wait included",
    ["service", "query"], buckets=LATENCY_BUCKETS,
)
OLDEST_RESTING = Gauge(
    "engine_oldest_resting_order_age_seconds", "Time since the oldest resting order was accepted", ["service"]
)
BOOK_REARM = Gauge(
    "engine_book_rearm_seconds", "Time the router took to re-arm its book at start", ["service", "source"]
)


def export_pool(pool) -> None:
    """Export an asyncpg pool's connections, read when Prometheus scrapes (nothing per query)."""
    open_, in_use, most = (DB_POOL_CONNECTIONS.labels(_service, state) for state in ("open", "in_use", "max"))
    open_.set_function(pool.get_size)
    in_use.set_function(lambda: pool.get_size() - pool.get_idle_size())
    most.set_function(pool.get_max_size)
