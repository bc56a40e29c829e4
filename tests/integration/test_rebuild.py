"""Rebuilding the read model from the log: from scratch, after retention, in batches, while serving, by command."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from services.projector import store
from services.projector.rebuild import rebuild
from shared import events as ev
from tests.unit.test_projector_fold import T0, interleaved_log, order_story
from tests.helpers import eventually
from tests.integration import projector_env
from tests.integration.projector_env import PROJECTION_WAIT_S, Env, assert_read_model_is_the_fold_of_the_log, running

env = projector_env.env  # the fixture


async def test_a_rebuild_from_scratch_equals_the_incremental_result(env: Env) -> None:
    log = interleaved_log(120)
    bogus = ev.RoutingStarted(order_id="o00001", seq=99, event_id="bogus", occurred_at=T0, correlation_id="o00001")
    await env.append(log)
    await env.log.append(bogus, expected_stream_seq=(await env.log.load("o00001")).last_stream_seq)
    async with running(env.projector(batch=37)):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    incremental = await env.tables()
    assert len(incremental["rejects"]) == 1
    summary = await rebuild(env.pool, env.js, env.topology, env.schema, chunk=100)
    assert await env.tables() == incremental
    assert (summary.events, summary.orders, summary.rejects) == (len(log) + 1, 120, 1)
    assert summary.last_stream_seq == await env.last_seq()


async def test_a_rebuild_after_retention_keeps_the_orders_whose_first_event_left_the_stream(env: Env) -> None:
    old = [e for i in range(10) for e in order_story(f"o-old{i}", "confirmed")]
    straddling = order_story("o-straddle", "confirmed")  # accepted before the cut, finished after it
    new = [e for i in range(10) for e in order_story(f"o-new{i}", "slippage")]
    await env.append(old + straddling[:2])
    cut = await env.last_seq() + 1
    await env.append(straddling[2:] + new)
    async with running(env.projector(batch=16)):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    incremental = await env.tables()
    await env.js.purge_stream(env.topology.orders_stream, seq=cut)  # retention took everything before `cut`
    summary = await rebuild(env.pool, env.js, env.topology, env.schema, chunk=8)
    assert await env.tables() == incremental
    assert summary.orders == 21 and summary.events == len(straddling) - 2 + len(new)


async def test_a_rebuild_in_small_batches_holds_few_orders_and_ends_in_the_incremental_result(env: Env) -> None:
    log = interleaved_log(150, seed=11)  # every order open at once: most are dropped and read back
    await env.append(log)
    late = ev.RoutingStarted(order_id="o00002", seq=99, event_id="late", occurred_at=T0, correlation_id="o00002")
    await env.log.append(late, expected_stream_seq=(await env.log.load("o00002")).last_stream_seq)
    async with running(env.projector(batch=50)):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    incremental = await env.tables()
    summary = await rebuild(env.pool, env.js, env.topology, env.schema, chunk=7)
    assert await env.tables() == incremental
    assert (summary.events, summary.orders, summary.rejects) == (len(log) + 1, 150, 1)
    assert summary.most_orders_held <= 2 * 7


async def test_a_rebuild_while_serving_and_appending_ends_in_the_fold_of_the_log(env: Env) -> None:
    log = interleaved_log(200, seed=3)
    half = len(log) // 2
    await env.append(log[:half])
    async with running(env.projector(batch=25)):
        appending = asyncio.create_task(env.append(log[half:]))
        summaries = []
        while not appending.done():
            summaries.append(await rebuild(env.pool, env.js, env.topology, env.schema, chunk=64))
        await appending
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    assert summaries
    await assert_read_model_is_the_fold_of_the_log(env, {e.order_id for _, e in log})


async def test_a_new_database_under_a_consumer_that_acked_everything_is_rebuilt_at_start(env: Env) -> None:
    log = interleaved_log(40)
    await env.append(log)
    async with running(env.projector()):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    expected = await env.tables()
    # The database is restored from before any of it, or replaced by an empty one.
    async with env.pool.acquire() as conn, conn.transaction():
        await store.reset(conn)
    async with running(env.projector()):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    assert await env.tables() == expected


async def test_the_rebuild_command_replaces_the_read_model_and_prints_a_summary(env: Env, namespace: str) -> None:
    await env.append(order_story("o-cli", "slippage"))
    async with env.pool.acquire() as conn:
        await store.set_position(conn, 12345)  # a stale position, which the rebuild replaces
    environment = {
        **os.environ,
        "NATS_URL": env.nats_url,
        "DATABASE_URL": env.database_url,
        "ENGINE_NAMESPACE": namespace,
        "DATABASE_SCHEMA": env.schema,
        "LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.projector", "rebuild", env=environment, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert "read model rebuilt: 6 events, 1 orders, 0 rejected" in stdout.decode()
    assert await env.caught_up()
    await assert_read_model_is_the_fold_of_the_log(env, {"o-cli"})


async def test_the_rebuild_command_stops_on_sigterm_even_while_connecting(env: Env, namespace: str) -> None:
    # A server that accepts connections and never answers: the rebuild waits in its connect.
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    environment = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{port}", "DATABASE_URL": env.database_url,
                   "ENGINE_NAMESPACE": namespace, "DATABASE_SCHEMA": env.schema, "LOG_FORMAT": "text"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.projector", "rebuild", env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.wait_for(accepted.wait(), 20)
        process.send_signal(signal.SIGTERM)
        # Within the 3 s connect timeout: nats-py finishes a TCP connect that is under way
        # before it gives in to a cancel, so the exit can take that long, never longer.
        output, _ = await asyncio.wait_for(process.communicate(), 5)
    finally:
        server.close()
    assert process.returncode == 1
    assert "rebuild interrupted; the read model is unchanged" in output.decode()
