"""The broker fails under load: the one nats-server killed and restarted on the same port
and store directory, and one node of a three-node JetStream cluster (streams at R3) killed."""

from __future__ import annotations

import secrets
import time

import pytest

from shared.natsauth import ADMIN, authorization
from shared.topology import Topology
from tests.e2e.conftest import start_stack, stop_stack
from tests.faults.harness import jetstream_ready, kill9_broker, restart_broker, start_cluster
from tests.faults.run import ELECTION_MAX_S, RESUME_LIMIT_S, STALL_LIMIT_S, FaultRun


async def test_nats_server_killed_and_restarted_costs_seconds_never_an_order(replicated_stack, profile, report):
    stack = replicated_stack
    run = FaultRun("kill -9 of nats-server, restarted", stack, profile, seed=3)
    point = run.order_at(0.35, 0.5)

    async def timeline(run: FaultRun) -> None:
        await run.driver.submitted(point)
        down = kill9_broker(stack)
        run.note("kill -9 nats-server", down)
        try:
            await run.driver.submitted(point + run.orders_in(profile.outage_s))
        finally:
            back = restart_broker(stack)
        run.note("nats-server back", back)
        run.outages.append((down, back))
        run.back = back

    figures = await run.execute(timeline)
    report(figures)
    problems = figures.problems(stall_limit=STALL_LIMIT_S, resume_limit=RESUME_LIMIT_S)
    assert not problems, figures.line() + "\n" + "\n".join(problems)


@pytest.mark.faults_full
async def test_one_node_of_a_three_node_cluster_killed_costs_seconds_never_an_order(
    database_url, stack_credentials, tmp_path, profile, report
):
    namespace = "f" + secrets.token_hex(4)
    config = authorization(Topology(namespace=namespace), stack_credentials.nats)
    brokers = start_cluster(tmp_path / "cluster", config)
    try:
        await jetstream_ready([b.url for b in brokers], stack_credentials.nats[ADMIN], replicas=len(brokers))
        stack = await start_stack(
            database_url, stack_credentials, tmp_path, replicas=2, namespace=namespace, brokers=brokers,
            stream_replicas=3,
        )
    except BaseException:
        for broker in brokers:
            broker.stop()
        raise
    try:
        run = FaultRun("kill -9 of one node of a 3-node NATS cluster (R3)", stack, profile, seed=4)
        point = run.order_at(0.35, 0.5)
        node = run.rng.randrange(len(brokers))

        async def timeline(run: FaultRun) -> None:
            await run.driver.submitted(point)
            run.note(f"kill -9 nats node n{node + 1}", kill9_broker(stack, node))
            try:
                await run.driver.submitted(point + run.orders_in(2 * profile.outage_s))
            finally:
                restart_broker(stack, node)
            run.note(f"node n{node + 1} back", time.time())

        figures = await run.execute(timeline)
        report(figures)
        problems = figures.problems(stall_limit=STALL_LIMIT_S + ELECTION_MAX_S)
        assert not problems, figures.line() + "\n" + "\n".join(problems)
    finally:
        await stop_stack(stack)
