"""Health, readiness and metrics endpoints, served by every service."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Literal, Mapping

import msgspec
import uvicorn
from litestar import Litestar, MediaType, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]


class Health(msgspec.Struct, kw_only=True):
    """Liveness answer."""

    status: Literal["ok"]
    service: str


class Readiness(msgspec.Struct, kw_only=True):
    """Readiness answer: each dependency and whether it answered.

    `degraded`: ready, but a dependency the service can work without does not answer.
    """

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, bool]


def ops_handlers(
    service: str,
    checks: Mapping[str, Check],
    reported: Mapping[str, Check] | None = None,
    *,
    with_metrics: bool = True,
) -> list[HTTPRouteHandler]:
    """Route handlers for /health, /healthz, /readyz and (unless `with_metrics` is false) /metrics.

    Readiness needs every one of `checks`; `reported` dependencies are shown in the answer
    but do not take the service out of its load balancer, because it still does its job
    without them.
    """
    reported = reported or {}

    @get(["/health", "/healthz"], media_type=MediaType.JSON, tags=["ops"], sync_to_thread=False)
    def health() -> Health:
        """Liveness: the process is up and serving."""
        return Health(status="ok", service=service)

    @get(
        "/readyz",
        media_type=MediaType.JSON,
        tags=["ops"],
        responses={503: ResponseSpec(Readiness, description="A dependency does not answer", generate_examples=False)},
    )
    async def ready() -> Response[Readiness]:
        """Readiness: every dependency it needs answers (503 and which one does not, otherwise)."""
        results = {}
        for name, check in {**checks, **reported}.items():
            try:
                results[name] = await asyncio.wait_for(check(), 2.0)
            except Exception:
                results[name] = False
        ok = all(results[name] for name in checks)
        status = ("ok" if all(results.values()) else "degraded") if ok else "unavailable"
        return Response(Readiness(status=status, checks=results), status_code=200 if ok else 503)

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [health, ready, prometheus] if with_metrics else [health, ready]


async def serve(app: Litestar, host: str, port: int, stop: asyncio.Event, **options: Any) -> None:
    """Serve `app` with uvicorn inside the running loop until `stop` is set.

    `options` are further `uvicorn.Config` arguments (the gateway's transport limits).
    """
    # Open WebSockets (streams of orders still resting) must not hold a shutdown forever.
    # No `Server` header: the banner tells an attacker which parser to aim at.
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
        server_header=False, **options,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the service owns signals
    task = asyncio.create_task(server.serve())
    logging.getLogger(__name__).info("serving on http://%s:%d", host, port)
    await stop.wait()
    server.should_exit = True
    await task


def ops_app(service: str, checks: Mapping[str, Check], reported: Mapping[str, Check] | None = None) -> Litestar:
    return Litestar(route_handlers=ops_handlers(service, checks, reported), openapi_config=None, logging_config=None)
