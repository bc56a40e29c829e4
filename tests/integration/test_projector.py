"""The projector against real nats-server and PostgreSQL: projection, idempotence, rejects, the service."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import httpx
import msgspec
from prometheus_client import REGISTRY

from services.projector import store
from services.projector.__main__ import serve
from services.projector.fold import project
from services.projector.settings import ProjectorSettings
from shared import events as ev
from shared import metrics
from shared.durables import ensure_consumer
from shared.orders import OrderState
from shared.settings import load
from tests.unit.test_projector_fold import T0, interleaved_log, order_story
from tests.helpers import eventually, free_port
from tools.setup import provision_nats
from tests.integration import projector_env
from tests.integration.projector_env import PROJECTION_WAIT_S, Env, assert_read_model_is_the_fold_of_the_log, running

env = projector_env.env  # the fixture


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


async def test_each_finished_order_is_counted_once_with_its_stages_however_often_its_batch_comes(env: Env) -> None:
    await env.append(order_story("o-count-1", "dropped") + order_story("o-count-2", "no_route"))
    batch = [(s.stream_seq, s.event) for order_id in ("o-count-1", "o-count-2") for s in await env.log.read(order_id)]
    before = _finished_counts()
    projector = env.projector()
    for _ in range(2):
        await projector.apply(batch)
    after = _finished_counts()
    assert {key: after[key] - before[key] for key in after} == {
        ("confirmed", "none"): 1, ("failed", "no_route"): 1, "submitted_to_terminal": 1,
    }


def _finished_counts() -> dict:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"service": metrics.service(), "order_type": "market", **labels}) or 0.0

    return {
        ("confirmed", "none"): sample("engine_orders_terminal_total", status="confirmed", code="none"),
        ("failed", "no_route"): sample("engine_orders_terminal_total", status="failed", code="no_route"),
        "submitted_to_terminal": sample("engine_order_stage_duration_seconds_count", stage="submitted_to_terminal"),
    }


async def test_redelivering_everything_through_a_recreated_consumer_leaves_the_tables_unchanged(env: Env) -> None:
    log = interleaved_log(80)
    await env.append(log)
    projector = env.projector(batch=50)
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


async def test_a_projection_folded_from_a_row_another_writer_has_moved_is_not_written(env: Env) -> None:
    events = order_story("o-moved", "confirmed")
    await env.append(events)
    items = [(s.stream_seq, s.event) for s in await env.log.read("o-moved")]
    projector = env.projector()
    await projector.apply(items[:2])
    async with env.pool.acquire() as conn:
        loaded = await store.load_current(conn, {"o-moved"})
        await projector.apply(items[2:4])  # another writer, after the load
        again = ev.OrderAccepted(
            order_id="o-moved", seq=len(items) + 1, event_id="again", occurred_at=T0, correlation_id="o-moved",
            order=events[0].order,
        )
        stale = project(loaded, items[2:] + [(len(items) + 1, again)])
        assert stale.rejects and stale.orders["o-moved"].state.seq == len(items)
        written = await store.write(conn, env.schema, stale, loaded)
    assert written.stale == {"o-moved"} and not written.rejects
    tables = await env.tables()
    assert [e["seq"] for e in tables["order_events"]] == [1, 2, 3, 4]
    assert [o["last_seq"] for o in tables["orders"]] == [4]
    assert tables["rejects"] == []


async def test_orders_another_writer_moves_between_a_batchs_load_and_write_are_folded_again(env: Env) -> None:
    await env.append(order_story("o-race", "retried"))
    items = [(s.stream_seq, s.event) for s in await env.log.read("o-race")]
    projector = env.projector()
    await projector.apply(items[:2])
    async with env.pool.acquire() as holder, holder.transaction():
        await store.lock(holder, env.schema)
        # The batch loads the row at seq 2, then waits for the lock to write.
        batch = asyncio.create_task(projector.apply(items[2:]))
        await eventually(lambda: _waits_for_the_projection_lock(env), timeout=PROJECTION_WAIT_S)
        current = await store.load_current(holder, {"o-race"})
        await store.write_locked(holder, env.schema, project(current, items[2:5]), current)
    projection = await batch
    assert projection.orders["o-race"].state.seq == len(items)
    assert sum(n for (_, outcome), n in projection.outcomes.items() if outcome == "duplicate") == 3
    await assert_read_model_is_the_fold_of_the_log(env, {"o-race"})


async def _waits_for_the_projection_lock(env: Env) -> bool:
    async with env.pool.acquire() as conn:
        return await conn.fetchval(
            "select exists (select from pg_locks where locktype = 'advisory' and not granted"
            " and classid = $1::bigint::oid and objid = (hashtext($2)::bigint & 4294967295)::oid)",
            store.PROJECTION_LOCK,
            env.schema,
        )


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
