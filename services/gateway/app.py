"""The gateway's composition root: `create_app(settings)` wires real adapters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator, Callable

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter, Histogram

from services.gateway.auth import Guard, KeyCache, Limits, api_guard
from services.gateway.browser import cors, require_json, security_headers
from services.gateway.webconsole import console_assets, console_page
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.limits import RateLimiter
from services.gateway.live import LiveHub
from services.gateway.openapi import COMPONENTS
from services.gateway.quotes import QuoteHub, quote_stream, quotes
from services.gateway.reads import ReadModel, open_pool
from services.gateway.routes import OrderController, stream
from services.gateway.settings import GatewaySettings
from services.gateway.submit import AcceptTiming
from shared import metrics
from shared.accounts import KeyStore
from shared.clock import SystemClock
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.ops import Check, ops_handlers
from shared.retention import LogRoom, report_usage
from shared.runtime import ConnectionListeners, close_nats, connect_nats
from shared.setup import require_streams
from shared.topology import Topology


def http_metrics(app: ASGIApp) -> ASGIApp:
    # Series bound once per (method, route, status): `labels()` on every request costs more
    # than the count itself.
    counters: dict[tuple[str, str, int], Counter] = {}
    durations: dict[str, Histogram] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            route = scope.get("path_template") or "unmatched"
            key = (scope["method"], route, status["code"])
            if (counter := counters.get(key)) is None:
                counter = counters[key] = metrics.HTTP_REQUESTS.labels(metrics.service(), key[0], route, str(key[2]))
            if (duration := durations.get(route)) is None:
                duration = durations[route] = metrics.HTTP_DURATION.labels(metrics.service(), route)
            counter.inc()
            duration.observe(time.perf_counter() - started)

    return middleware


def create_app(settings: GatewaySettings) -> Litestar:
    topology = Topology(namespace=settings.engine_namespace)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        listeners = ConnectionListeners()
        nc = await connect_nats(settings, "gateway", listeners=listeners)
        js = nc.jetstream()
        await require_streams(js, topology.orders_stream, topology.quotes_stream, topology.ratelimit_stream)
        log = EventLog(nc, js, topology)
        clock = SystemClock()
        keys = await KeyStore.open(js, topology)
        ids = Ids(clock, secret=await keys.order_id_secret())
        guard = Guard(
            KeyCache(keys, ttl=settings.key_cache_ttl_s),
            RateLimiter(js, topology, window_s=settings.rate_limit_window_s),
            Limits(
                submit_rate=settings.submit_rate_limit,
                read_rate=settings.read_rate_limit,
                max_streams=settings.max_streams_per_key,
            ),
        )
        # PostgreSQL is not needed to start: the pool connects on first use.
        pool = await open_pool(
            settings.database_url, settings.database_schema,
            size=settings.db_pool_size, connect_timeout=settings.read_model_timeout_s,
        )
        reads = ReadModel(pool, timeout_s=settings.read_model_timeout_s, retry_s=settings.read_model_retry_s)
        monitor = asyncio.create_task(reads.monitor())
        room = LogRoom(settings.log_intake_reserve)
        stopping = asyncio.Event()
        hub = LiveHub(
            nc, log, idle_check_s=settings.stream_idle_check_s, idle_check_max_s=settings.stream_idle_check_max_s
        )
        listeners.reconnected.append(hub.recover_all)
        listeners.errors.append(hub.on_error)
        sampler = asyncio.create_task(report_usage(nc, topology.orders_stream, stopping, interval=5, observe=room.update))
        app.state.update(
            guard=guard,
            settings=settings,
            nc=nc,
            log=log,
            reads=reads,
            hub=hub,
            quotes=QuoteHub(nc, topology),
            clock=clock,
            ids=ids,
            log_room=room,
            emitter=Emitter(log, ids, clock),
            accept_timing=AcceptTiming(
                deadline_ms=settings.accept_timeout_ms,
                clock_margin_ms=settings.accept_clock_margin_ms,
                check_timeout_ms=settings.accept_check_timeout_ms,
            ),
        )
        try:
            yield
        finally:
            monitor.cancel()
            stopping.set()
            await sampler
            await close_nats(nc)
            await reads.close()

    app = Litestar(
        # /metrics is served on the ops port only (see __main__); health stays public.
        route_handlers=[
            OrderController, stream, quotes, quote_stream, console_page, console_assets,
            *ops_handlers("gateway", *readiness(lambda: app), with_metrics=False),
        ],
        lifespan=[lifespan],
        logging_config=None,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        middleware=[http_metrics, api_guard],
        before_send=[security_headers],
        before_request=require_json,
        cors_config=cors(settings.allowed_origins()),
        openapi_config=OpenAPIConfig(
            title="DEX order execution engine",
            version="1.0.0",
            description="Submit swap orders, read them, and stream every step of their execution.",
            path="/schema",
            use_handler_docstrings=True,
            components=COMPONENTS,
        ),
    )
    return app


def readiness(app: Litestar | Callable[[], Litestar]) -> tuple[dict[str, Check], dict[str, Check]]:
    """The gateway's readiness checks for its public and ops ports: what it needs, and what it reports.

    A gateway that reaches NATS accepts orders and streams them, so it is ready; PostgreSQL
    only serves listings (single orders fall back to the log), so its state is reported
    but never takes the gateway out of the Service.
    """

    def current() -> Litestar:
        return app if isinstance(app, Litestar) else app()

    async def nats_ready() -> bool:
        return current().state.nc.is_connected

    async def db_available() -> bool:
        reads = current().state.reads
        return reads.available or await reads.ping()  # kept current by the read model's monitor

    return {"nats": nats_ready}, {"postgres": db_available}
