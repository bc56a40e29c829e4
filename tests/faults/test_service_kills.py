"""kill -9 of service replicas under load: each service once (the executor just as a
transaction reaches the chain), and every executor at once, twice, at that moment."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SERVICES
from tests.faults.harness import ChainWatch
from tests.faults.run import STALL_LIMIT_S, FaultRun


async def test_kill_9_of_each_service_costs_seconds_never_an_order(replicated_stack, profile, report):
    stack = replicated_stack
    run = FaultRun("kill -9 of each service", stack, profile, seed=1)
    services = run.rng.sample(SERVICES, len(SERVICES))
    points = sorted(run.rng.sample(range(int(0.3 * profile.count), int(0.75 * profile.count)), len(services)))

    async def timeline(run: FaultRun) -> None:
        async with ChainWatch(stack) as chain:
            for service, point in zip(services, points):
                await run.driver.submitted(point)
                if service == "executor":
                    await chain.next_record()  # between submitting and recording what the chain said
                run.kill(run.rng.choice(stack.names(service)))

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)


@pytest.mark.faults_full
async def test_kill_9_of_every_executor_once_a_transaction_reached_the_chain(replicated_stack, profile, report):
    """No executor survives to take over: the restarted ones must find what the chain holds."""
    stack = replicated_stack
    run = FaultRun("kill -9 of every executor as a transaction reaches the chain", stack, profile, seed=2)
    points = sorted(run.rng.sample(range(int(0.3 * profile.count), int(0.7 * profile.count)), 2))

    async def timeline(run: FaultRun) -> None:
        async with ChainWatch(stack) as chain:
            for point in points:
                await run.driver.submitted(point)
                await chain.next_record(timeout=30)
                for name in stack.names("executor"):
                    run.kill(name)

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)
