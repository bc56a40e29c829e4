"""python -m services.executor: builds, submits and confirms routed orders."""

from __future__ import annotations

import asyncio

from services.executor.build import BuildParams, Wallet
from services.executor.driver import Executor
from services.executor.settings import ExecutorSettings
from services.executor.settle import settler
from shared import ops, resume, runtime
from shared.chain import JetStreamChainStore, SimulatedChain
from shared.clock import SystemClock
from shared.consumer import Consumer
from shared.durables import order_spec
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.launchlog import LaunchRegistry
from shared.market.model import Market
from shared.settings import load
from shared.setup import require_streams
from shared.topology import Topology


async def build_executor(settings: ExecutorSettings, nc, clock) -> Executor:
    """The composition root: real chain store and event log from settings."""
    topology = Topology(namespace=settings.engine_namespace)
    js = nc.jetstream()
    await require_streams(js, topology.orders_stream, topology.launches()[0])
    store = await JetStreamChainStore.open(js, topology.chain_bucket)
    market = Market(settings.sim_seed)
    launches = LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch)
    await launches.start()
    chain = SimulatedChain(store, settings.slot_clock(clock), settings.chain_config(), settler(market))

    async def know_pools(route) -> None:
        """A route through a pool launched moments ago: catch up with the launch log first."""
        if any(not _listed(market, leg.pool_id) for path in route.paths for leg in path.legs):
            await launches.sync(timeout=5.0)
    return Executor(
        Emitter(EventLog(nc, js, topology), Ids(clock), clock),
        chain,
        Wallet.from_seed(settings.wallet_seed),
        BuildParams(compute_unit_limit=settings.compute_unit_limit, compute_unit_price=settings.compute_unit_price),
        max_attempts=settings.executor_max_attempts,
        backoff_base_ms=settings.executor_backoff_base_ms,
        backoff_max_ms=settings.executor_backoff_max_ms,
        prepare=know_pools,
    )


def _listed(market: Market, pool_id: str) -> bool:
    pair = pool_id.split(":", 1)[-1]
    return any(p.pair_id == pair for p in market.pairs())


async def serve(settings: ExecutorSettings, stop: asyncio.Event) -> None:
    topology = Topology(namespace=settings.engine_namespace)
    async with runtime.nats_connection(settings, "executor") as nc:
        executor = await build_executor(settings, nc, SystemClock())
        spec = order_spec(topology, "executor")
        consumer = Consumer(nc.jetstream(), topology.orders_stream, spec, executor.handle, concurrency=settings.concurrency)
        nudges = resume.consumer(nc.jetstream(), topology, "executor", executor.resume)

        async def nats_ready() -> bool:
            return nc.is_connected

        await asyncio.gather(
            consumer.run(stop),
            nudges.run(stop),
            ops.serve(ops.ops_app("executor", {"nats": nats_ready}), settings.ops_host, settings.ops_port, stop),
        )


def main() -> None:
    settings = load(ExecutorSettings)
    runtime.run("executor", settings, lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
