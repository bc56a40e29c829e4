"""kill -9 of service replicas under load: each service once, and the executor just after
a transaction reached the chain (before it could record what the chain answered)."""

from __future__ import annotations

import asyncio
import time

from shared.topology import Topology
from tests.e2e.conftest import SERVICES
from tests.faults.run import STALL_LIMIT_S, FaultRun


async def test_kill_9_of_each_service_costs_seconds_never_an_order(replicated_stack, profile, report):
    stack = replicated_stack
    run = FaultRun("kill -9 of each service", stack, profile, seed=1)
    services = run.rng.sample(SERVICES, len(SERVICES))
    points = sorted(run.rng.sample(range(int(0.3 * profile.count), int(0.75 * profile.count)), len(services)))

    async def timeline(run: FaultRun) -> None:
        for service, point in zip(services, points):
            await run.driver.submitted(point)
            run.kill(run.rng.choice(stack.names(service)))

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)


async def test_kill_9_of_the_executor_once_its_transaction_reached_the_chain(replicated_stack, profile, report):
    """Every executor replica dies the moment the chain stores a transaction, twice."""
    stack = replicated_stack
    run = FaultRun("kill -9 of the executors as a transaction reaches the chain", stack, profile, seed=2)
    points = sorted(run.rng.sample(range(int(0.3 * profile.count), int(0.7 * profile.count)), 2))
    bucket = Topology(namespace=stack.env["ENGINE_NAMESPACE"]).chain_bucket

    async def timeline(run: FaultRun) -> None:
        nc = await stack.admin_nats()
        landed: asyncio.Queue[float] = asyncio.Queue()

        async def on_record(msg) -> None:
            landed.put_nowait(time.time())

        await nc.subscribe(f"$KV.{bucket}.tx.>", cb=on_record)  # the chain's own ledger, as it is written
        try:
            for point in points:
                await run.driver.submitted(point)
                while not landed.empty():
                    landed.get_nowait()
                await asyncio.wait_for(landed.get(), timeout=10)
                for name in stack.names("executor"):
                    run.kill(name)
        finally:
            await nc.close()

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)
