"""The projector against real nats-server and PostgreSQL: projection, idempotence, rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import asyncpg
import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.projector import store
from services.projector.__main__ import serve
from services.projector.fold import Current
from services.projector.migrations import migrate
from services.projector.rebuild import rebuild
from services.projector.service import Projector
from services.projector.settings import ProjectorSettings
from shared import events as ev
from shared.consumer import ensure_consumer
from shared.eventlog import EventLog
from shared.orders import OrderState
from shared.settings import load
from shared.topology import Topology
from tests.unit.test_projector_fold import T0, interleaved_log, order_story
from tests.helpers import eventually, free_port
from tools.setup import provision_nats


#: How long a test waits for the projector to catch up.
PROJECTION_WAIT_S = 20.0

_REJECTS = "select order_id, seq, stream_seq, event_type, reason from projector_rejects order by order_id, seq"


@dataclass
class Env:
    nc: Client
    js: JetStreamContext
    topology: Topology
    pool: asyncpg.Pool
    schema: str
    log: EventLog
    database_url: str
    nats_url: str
    positions: dict[str, int] = field(default_factory=dict)  # order id -> its last stream seq

    def projector(self, **kwargs: Any) -> Projector:
        return Projector(self.pool, self.nc, self.js, self.topology, self.schema, **kwargs)

    async def append(self, items: list[tuple[int, ev.OrderEvent]] | list[ev.OrderEvent]) -> None:
        """Append events in the given order, each guarded by its order's last stream seq."""
        for item in items:
            event = item[1] if isinstance(item, tuple) else item
            appended = await self.log.append(event, expected_stream_seq=self.positions.get(event.order_id, 0))
            self.positions[event.order_id] = appended.stream_seq

    async def last_seq(self) -> int:
        return (await self.js.stream_info(self.topology.orders_stream)).state.last_seq

    async def caught_up(self) -> bool:
        """Every logged event is projected or rejected (the position alone is the highest one applied)."""
        async with self.pool.acquire() as conn:
            position = await store.position(conn)
            events = await conn.fetchval("select count(*) from order_events")
            rejects = await conn.fetchval("select count(*) from projector_rejects")
        state = (await self.js.stream_info(self.topology.orders_stream)).state
        return position == state.last_seq and events + rejects == state.messages

    async def tables(self) -> dict[str, list[dict]]:
        """Every row of the read model, in a stable order (times of writing left out)."""
        async with self.pool.acquire() as conn:
            return {
                "orders": [dict(r) for r in await conn.fetch("select * from orders order by order_id")],
                "order_events": [
                    dict(r) for r in await conn.fetch("select * from order_events order by order_id, seq")
                ],
                "positions": [dict(r) for r in await conn.fetch("select name, stream_seq from projector_positions")],
                "rejects": [dict(r) for r in await conn.fetch(_REJECTS)],
            }


@pytest.fixture
async def env(nats_url: str, database_url: str, namespace: str, pg_schema: str) -> AsyncIterator[Env]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    topology = Topology(namespace=namespace)
    await provision_nats(js, topology)
    pool = await store.create_pool(database_url, pg_schema)
    async with pool.acquire() as conn:
        await migrate(conn, pg_schema)
    try:
        yield Env(nc, js, topology, pool, pg_schema, EventLog(nc, js, topology), database_url, nats_url)
    finally:
        await pool.close()
        for stream in (topology.orders_stream, topology.quotes_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()


@contextlib.asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def assert_read_model_is_the_fold_of_the_log(env: Env, order_ids: set[str]) -> None:
    tables = await env.tables()
    assert {r["order_id"] for r in tables["orders"]} == order_ids
    events_by_order: dict[str, list[dict]] = {}
    for row in tables["order_events"]:
        events_by_order.setdefault(row["order_id"], []).append(row)
    for row in tables["orders"]:
        history = await env.log.load(row["order_id"])
        assert history.state is not None
        assert msgspec.json.decode(row["state"], type=OrderState) == history.state
        expected = store.order_record(
            row["order_id"], Current(state=history.state, last_stream_seq=history.last_stream_seq)
        )
        assert tuple(row.values())[:20] == expected[:20]
        logged = [
            (s.event.seq, s.stream_seq, ev.event_type(s.event), store.timestamp(s.event.occurred_at), s.event)
            for s in history.events
        ]
        projected = [
            (e["seq"], e["stream_seq"], e["event_type"], e["occurred_at"], ev.decode(e["payload"].encode()))
            for e in events_by_order[row["order_id"]]
        ]
        assert projected == logged
    assert tables["positions"] == [{"name": "projector", "stream_seq": await env.last_seq()}]


async def test_events_of_many_orders_are_projected_to_the_fold_of_the_log(env: Env) -> None:
    log = interleaved_log(150)
    async with running(env.projector(batch=64)):
        await env.append(log[: len(log) // 2])
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
        await env.append(log[len(log) // 2 :])
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    await assert_read_model_is_the_fold_of_the_log(env, {e.order_id for _, e in log})
    assert len((await env.tables())["order_events"]) == len(log)


async def test_applying_the_same_batch_twice_changes_nothing(env: Env) -> None:
    log = interleaved_log(30)
    await env.append(log)
    batch = [
        (s.stream_seq, s.event) for order_id in {e.order_id for _, e in log} for s in (await env.log.read(order_id))
    ]
    projector = env.projector()
    first = await projector.apply(batch)
    before = await env.tables()
    second = await projector.apply(batch)
    assert await env.tables() == before
    assert first.orders and not second.orders and not second.events
    assert second.outcomes and {outcome for _, outcome in second.outcomes} == {"duplicate"}


async def test_redelivering_everything_through_a_recreated_consumer_leaves_the_tables_unchanged(env: Env) -> None:
    log = interleaved_log(80)
    await env.append(log)
    projector = env.projector(batch=50, idle_check=0.2)
    async with running(projector):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
        before = await env.tables()
        # Deleted under the running projector, then made again by the set-up step: the new
        # consumer starts over, and the projector goes on with it.
        await env.js.delete_consumer(env.topology.orders_stream, projector.spec.durable)
        await provision_nats(env.js, env.topology)

        async def redelivered() -> bool:
            with contextlib.suppress(Exception):
                info = await env.js.consumer_info(env.topology.orders_stream, projector.spec.durable)
                return info.delivered.stream_seq == len(log) and info.num_ack_pending == 0 and info.num_pending == 0
            return False

        await eventually(redelivered, timeout=PROJECTION_WAIT_S)
    assert await env.tables() == before
    await assert_read_model_is_the_fold_of_the_log(env, {e.order_id for _, e in log})


async def test_a_projector_stopped_mid_stream_hands_back_what_it_fetched_so_the_next_one_goes_on_at_once(
    env: Env,
) -> None:
    log = interleaved_log(300)
    await env.append(log)

    async def position() -> int:
        async with env.pool.acquire() as conn:
            return await store.position(conn) or 0

    # Acks are awaited for two minutes: anything fetched and neither acked nor handed back
    # would hold the second projector up far longer than this test waits.
    spec = env.projector().spec
    await ensure_consumer(env.js, env.topology.orders_stream, dataclasses.replace(spec, ack_wait=120.0))
    async with running(env.projector(batch=20)):
        await eventually(position, timeout=PROJECTION_WAIT_S)
    assert await position() < len(log)
    async with running(env.projector(batch=20)):
        await eventually(env.caught_up, timeout=15.0)
    await assert_read_model_is_the_fold_of_the_log(env, {e.order_id for _, e in log})


async def test_a_batch_delivered_ahead_of_an_earlier_one_is_completed_from_the_log(env: Env) -> None:
    events = order_story("o-late", "retried")
    await env.append(events)
    stored = await env.log.read("o-late")
    projector = env.projector()
    await projector.apply([(s.stream_seq, s.event) for s in stored[:2]])
    # Seq 6 on: seq 3..5 are still with another replica, or awaiting redelivery.
    projection = await projector.apply([(s.stream_seq, s.event) for s in stored[5:]])
    assert not projection.rejects
    await projector.apply([(s.stream_seq, s.event) for s in stored[2:5]])
    await assert_read_model_is_the_fold_of_the_log(env, {"o-late"})


async def test_an_illegal_event_is_recorded_as_a_reject_and_left_out_of_the_history_while_the_rest_is_projected(env: Env) -> None:
    bad = order_story("o-bad", "confirmed")
    good = order_story("o-good", "confirmed")
    bogus = ev.OrderConfirmed(
        order_id="o-bad",
        seq=2,
        event_id="bogus",
        occurred_at=T0,
        correlation_id="o-bad",
        signature="s",
        slot=1,
        amount_out=1,
    )
    await env.append([bad[0], bogus, good[0], good[1], good[2]])
    async with running(env.projector(batch=2)):
        await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    tables = await env.tables()
    assert tables["rejects"] == [
        {
            "order_id": "o-bad",
            "seq": 2,
            "stream_seq": 2,
            "event_type": "OrderConfirmed",
            "reason": "OrderConfirmed cannot follow status 'pending' (order o-bad)",
        }
    ]
    states = {r["order_id"]: msgspec.json.decode(r["state"], type=OrderState) for r in tables["orders"]}
    assert (states["o-bad"].status, states["o-bad"].seq) == ("pending", 1)
    assert (states["o-good"].status, states["o-good"].seq) == ("building", 3)
    # Not in the order's history: readers fold it again.
    assert [(e["order_id"], e["seq"]) for e in tables["order_events"]] == [
        ("o-bad", 1),
        ("o-good", 1),
        ("o-good", 2),
        ("o-good", 3),
    ]


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


async def test_the_service_projects_and_reports_ready_and_metrics_until_stopped(env: Env, namespace: str) -> None:
    port = free_port()
    settings = load(
        ProjectorSettings,
        {},
        nats_url=env.nats_url,
        database_url=env.database_url,
        engine_namespace=namespace,
        database_schema=env.schema,
        ops_port=port,
        projector_batch=10,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop))
    events = order_story("o-svc", "confirmed")
    await env.append(events)
    await eventually(env.caught_up, timeout=PROJECTION_WAIT_S)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        ready = await eventually(lambda: _get(http, "/readyz"), timeout=PROJECTION_WAIT_S)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"nats": True, "postgres": True}}
        metrics = (await http.get("/metrics")).text
        assert "engine_projector_batch_size_count" in metrics
        assert "engine_projector_lag_seconds" in metrics
    stop.set()
    await asyncio.wait_for(service, 10)
    await assert_read_model_is_the_fold_of_the_log(env, {"o-svc"})


async def _get(http: httpx.AsyncClient, path: str) -> httpx.Response | None:
    with contextlib.suppress(httpx.TransportError):
        return await http.get(path)
    return None


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
