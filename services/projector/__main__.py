"""`python -m services.projector [serve|rebuild]`: run the projector, or rebuild the read model.

serve    consume the order stream into PostgreSQL until SIGTERM/SIGINT (the default)
rebuild  replace the read model with the fold of the whole stream, print a summary, exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import AsyncIterator

import asyncpg
import nats.errors
from nats.aio.client import Client

from services.projector import store
from services.projector.migrations import migrate
from services.projector.rebuild import RebuildSummary, rebuild
from services.projector.reconcile import Reconciler
from services.projector.service import Projector
from services.projector.settings import ProjectorSettings
from shared import metrics, resume, runtime
from shared.eventlog import EventLog
from shared.ops import ops_app
from shared.ops import serve as serve_ops
from shared.retention import report_usage
from shared.settings import load
from shared.setup import SetupMissing, require_streams
from shared.topology import Topology

SERVICE = "projector"
log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def connections(
    settings: ProjectorSettings, *, fail_fast: bool = False
) -> AsyncIterator[tuple[Client, asyncpg.Pool]]:
    """NATS and a migrated PostgreSQL pool, with the streams in place."""
    async with contextlib.AsyncExitStack() as stack:
        nc = await stack.enter_async_context(runtime.nats_connection(settings, SERVICE, fail_fast=fail_fast))
        await require_streams(nc.jetstream(), Topology(namespace=settings.engine_namespace).orders_stream)
        pool = await store.create_pool(settings.database_url, settings.database_schema, timeout=5 if fail_fast else 60)
        stack.push_async_callback(pool.close)
        metrics.export_pool(pool)
        async with pool.acquire() as conn:
            await migrate(conn, settings.database_schema)
        yield nc, pool


async def serve(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """Project until `stop` is set, with health, readiness and metrics on the ops port."""
    async with connections(settings) as (nc, pool):
        topology = Topology(namespace=settings.engine_namespace)
        projector = Projector(
            pool,
            nc,
            nc.jetstream(),
            topology,
            settings.database_schema,
            batch=settings.projector_batch,
            linger_ms=settings.projector_linger_ms,
            rebuild_batch=settings.rebuild_batch,
        )

        async def nats_ok() -> bool:
            return nc.is_connected

        async def postgres_ok() -> bool:
            return await pool.fetchval("select 1") == 1

        reconciler = Reconciler(
            pool, nc.jetstream(), topology, events=EventLog(nc, nc.jetstream(), topology),
            interval_s=settings.reconcile_interval_s, stall_s=settings.reconcile_stall_s,
        )
        nudges = resume.consumer(nc.jetstream(), topology, SERVICE, projector.resume, concurrency=4)
        app = ops_app(SERVICE, {"nats": nats_ok, "postgres": postgres_ok})
        ops = asyncio.create_task(serve_ops(app, settings.ops_host, settings.ops_port, stop))
        # Alongside the projection: its nudges (fold one order again) and the reconciler.
        beside = [asyncio.create_task(nudges.run(stop)), asyncio.create_task(reconciler.run(stop)),
                  asyncio.create_task(report_usage(nc, topology.orders_stream, stop))]
        for task in beside:  # one that fails (a missing durable) stops the service, which reports it
            task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or stop.set())
        try:
            await projector.run(stop)
            if not stop.is_set():
                raise RuntimeError("the NATS connection closed; the projector cannot go on")
        finally:
            stop.set()  # a projector that ends for any reason takes the others down with it
            await ops
            await asyncio.gather(*beside)


async def rebuild_once(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """Rebuild the read model; a signal at any point (connecting included) rolls it back.

    A one-off command: it connects once and fails within seconds when a server is not
    there, rather than waiting for it.
    """

    async def work() -> RebuildSummary:
        async with connections(settings, fail_fast=True) as (nc, pool):
            topology = Topology(namespace=settings.engine_namespace)
            return await rebuild(
                pool, nc.jetstream(), topology, settings.database_schema, chunk=settings.rebuild_batch
            )

    task = asyncio.create_task(work())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        # Whatever the cancelled work raises on its way out (a connect turns it into a timeout).
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        log.error("rebuild interrupted; the read model is unchanged")
        raise SystemExit(1)
    try:
        summary = task.result()
    except (OSError, nats.errors.Error, asyncpg.PostgresError, SetupMissing) as exc:
        log.error(f"rebuild failed; the read model is unchanged: {exc!r}")
        raise SystemExit(1) from None
    log.info("read model rebuilt", extra={"events": summary.events, "orders": summary.orders, "seconds": summary.seconds})
    print(summary, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.projector", description="Fold the order event log into the PostgreSQL read model."
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("serve", "rebuild"),
        default="serve",
        help="serve: project continuously (default); rebuild: rebuild the read model from the whole log, then exit",
    )
    args = parser.parse_args(argv)
    settings = load(ProjectorSettings)
    entry = serve if args.command == "serve" else rebuild_once
    runtime.run(SERVICE, settings, lambda stop: entry(settings, stop))


if __name__ == "__main__":
    main()
