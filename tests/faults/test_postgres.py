"""PostgreSQL stopped for about 20 s under load: it holds the read model only, so orders go on
being accepted and executed, and the read model catches up with the log once it is back."""

from __future__ import annotations

import dataclasses

import pytest

from tests.faults.conftest import POSTGRES_OUTAGE_S
from tests.faults.run import STALL_LIMIT_S, FaultRun


@pytest.mark.faults_full
async def test_postgres_stopped_costs_seconds_never_an_order(postgres_stack, private_postgres, profile, report):
    stack = postgres_stack
    profile = dataclasses.replace(profile, seconds=POSTGRES_OUTAGE_S + 15, outage_s=POSTGRES_OUTAGE_S)
    run = FaultRun(f"PostgreSQL stopped for {POSTGRES_OUTAGE_S} s", stack, profile, seed=5)
    point = run.order_at(0.15, 0.25)

    async def timeline(run: FaultRun) -> None:
        await run.driver.submitted(point)
        run.note("stop PostgreSQL", private_postgres.stop())
        try:
            await run.driver.submitted(point + run.orders_in(profile.outage_s))
        finally:
            back = private_postgres.start()
        run.note("PostgreSQL back", back)

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)
