"""Process scaffolding shared by the services: logging, tracing, signals, connections."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from nats.aio.client import Client

from shared import logs, metrics, tracing
from shared.natsauth import inbox_prefix
from shared.natsclient import GatheringClient
from shared.settings import Common

log = logging.getLogger(__name__)

# A service allocates many short-lived objects per message; the interpreter's default
# (a young-generation collection every 700 net allocations) spent about 8% of a saturated
# stack's CPU collecting them. The older generations keep their default ratios.
GC_YOUNG_THRESHOLD = 50_000


def run(service: str, common: Common, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` until SIGINT/SIGTERM sets `stop`; the service then drains and exits."""
    logs.setup(service, level=common.log_level, fmt=common.log_format)
    tracing.setup(service, common.otel_traces_exporter, common.otel_traces_sampler_arg)
    metrics.set_service(service)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    # What start-up built lives as long as the process: out of every later collection.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    asyncio.run(_main(service, main))


async def _main(service: str, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("starting", extra={"service": service})
    await main(stop)
    log.info("stopped", extra={"service": service})


@dataclass
class ConnectionListeners:
    """What else a connection's asynchronous errors and reconnects are reported to.

    Filled after connecting (what listens usually needs the connection itself); each
    listener is awaited in turn, and one that fails does not stop the others.
    """

    errors: list[Callable[[Exception], Awaitable[None]]] = field(default_factory=list)
    reconnected: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def connect_nats(
    common: Common, name: str, *, fail_fast: bool = False, listeners: ConnectionListeners | None = None
) -> Client:
    """Connect as the service's user with unlimited reconnects: a broker failover must not stop it.

    With a user (`NATS_USER`), replies come to that user's own inbox prefix, the only
    inboxes its permissions let it subscribe to (`shared.natsauth`). `fail_fast` is for
    one-off commands: one attempt of a few seconds, and no reconnecting.
    """
    listeners = listeners or ConnectionListeners()

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)
        for listener in listeners.errors:
            try:
                await listener(exc)
            except Exception:
                log.exception("nats error listener failed")

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")
        for listener in listeners.reconnected:
            try:
                await listener()
            except Exception:
                log.exception("nats reconnect listener failed")

    options: dict = {}
    if common.nats_user:
        options = {
            "user": common.nats_user,
            "password": common.nats_password,
            "inbox_prefix": inbox_prefix(common.nats_user),
        }
    if fail_fast:
        options.update(allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
    else:
        options.update(max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    nc = GatheringClient(flush_delay_ms=common.nats_flush_delay_ms)
    await nc.connect(
        nats_servers(common.nats_url),
        name=name,
        **options,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    return nc


def nats_servers(url: str) -> list[str]:
    """The servers of `NATS_URL`: one URL or a comma-separated list (the nodes of a cluster)."""
    return [part.strip() for part in url.split(",") if part.strip()]


@contextlib.asynccontextmanager
async def nats_connection(common: Common, name: str, *, fail_fast: bool = False):
    nc = await connect_nats(common, name, fail_fast=fail_fast)
    try:
        yield nc
    finally:
        await close_nats(nc)


async def close_nats(nc: Client, timeout: float = 5.0) -> None:
    """Drain (finish in-flight messages), but never let a stuck subscription hold the exit."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        with contextlib.suppress(Exception):
            await nc.close()
