"""Nothing is ever stuck: a fired order the router left in routing, and stalled orders the
reconciler finds, are taken up again and finished, against real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

import msgspec
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from services.executor.driver import Executor
from services.projector import store
from services.projector.migrations import migrate
from services.projector.reconcile import Reconciler
from services.projector.service import Projector
from services.router import compose
from services.router.handler import Router
from services.router.settings import RouterSettings
from shared import events as ev
from shared import metrics, resume, tracing
from shared.clock import SystemClock
from shared.consumer import Consumer, Retry
from shared.durables import order_spec
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict, EventLog
from shared.ids import Ids
from shared.market.model import Market
from tests.helpers import ack_unhandled, eventually
from tests.integration.test_executor_recovery import new_executor
from tests.kit import SPEC, make

LIMIT = msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", limit_price="0.000001", min_out=1)


@contextlib.asynccontextmanager
async def consuming(*consumers: Consumer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def append(log: EventLog, *events: ev.OrderEvent) -> None:
    """Append events directly, as the service that wrote them would have."""
    last = (await log.load(events[0].order_id)).last_stream_seq
    for event in events:
        last = (await log.append(event, expected_stream_seq=last)).stream_seq


async def drain(nc, stream: str, durable: str, count: int) -> None:
    """Ack `count` messages of a durable unhandled: a service that took them and died."""
    await ack_unhandled(nc.jetstream(), stream, durable, lambda acked: acked >= count)


def router_of(log: EventLog, clock, **options) -> Router:
    settings = RouterSettings(sim_profile="zero", sim_genesis_ms=0)
    return compose.router(settings, Emitter(log, Ids(clock), clock), Market(42), **options)


def order_consumer(js, topology, service: str, handler) -> Consumer:
    return Consumer(js, topology.orders_stream, order_spec(topology, service, ack_wait=5.0), handler)


def _handled(kind: str, outcome: str) -> float:
    labels = {"service": metrics.service(), "event": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("engine_events_handled_total", labels) or 0.0


async def kinds(log: EventLog, order_id: str) -> list[str]:
    return [type(s.event).__name__ for s in (await log.load(order_id)).events]


async def test_an_order_whose_router_died_between_trigger_and_route_is_routed_by_the_consumer_and_confirmed(jetstream):
    nc, js, topology = jetstream
    log, clock = EventLog(nc, js, topology), SystemClock()
    await append(log, make(ev.OrderAccepted, "fired", order=LIMIT), make(ev.OrderOpened, "fired", seq=2))
    await drain(nc, topology.orders_stream, "router", 1)  # the acceptance: done before the crash
    # The trigger loop appended OrderTriggered and died before OrderRouted.
    await append(log, make(ev.OrderTriggered, "fired", seq=3, at=clock.now_ms()))
    router = router_of(log, clock, trigger_grace_ms=300)
    executor = await new_executor(js, topology, log, clock)
    async with consuming(
        order_consumer(js, topology, "router", router.handle),
        order_consumer(js, topology, "executor", executor.handle),
    ):
        async def confirmed() -> bool:
            return (await log.load("fired")).state.status == "confirmed"

        await eventually(confirmed, timeout=15, message="the fired order confirmed")
    found = await kinds(log, "fired")
    assert found[:4] == ["OrderAccepted", "OrderOpened", "OrderTriggered", "OrderRouted"]
    assert found.count("OrderRouted") == 1 and found[-1] == "OrderConfirmed"


async def test_a_fired_order_the_trigger_loop_routes_is_left_to_it_within_the_grace(jetstream):
    nc, js, topology = jetstream
    log, clock = EventLog(nc, js, topology), SystemClock()
    router = router_of(log, clock, trigger_grace_ms=60_000)
    await append(log, make(ev.OrderAccepted, "fast", order=LIMIT), make(ev.OrderOpened, "fast", seq=2))
    await drain(nc, topology.orders_stream, "router", 1)
    await append(log, make(ev.OrderTriggered, "fast", seq=3, at=clock.now_ms()))
    retried = _handled("OrderTriggered", "retry")
    async with consuming(order_consumer(js, topology, "router", router.handle)):
        await eventually(lambda: _handled("OrderTriggered", "retry") == retried + 1,
                         message="the trigger handed back for later")
    assert await kinds(log, "fast") == ["OrderAccepted", "OrderOpened", "OrderTriggered"]


async def test_the_router_gives_a_contended_order_back_for_redelivery_instead_of_dropping_it(jetstream):
    nc, js, topology = jetstream
    log, clock = EventLog(nc, js, topology), SystemClock()
    router = router_of(log, clock)
    tries = 0

    async def always_contended(order_id: str, *_) -> None:
        nonlocal tries
        tries += 1
        raise ConcurrencyConflict(order_id)

    with pytest.raises(Retry):
        await router._retrying(always_contended, "o1")
    assert tries == 5
    # Callers that are not consumers carry on: the next slot tries again.
    router._fire = always_contended  # type: ignore[method-assign]
    assert await router.fire("o1", "limit reached") is False


@pytest.fixture
async def read_model(jetstream, database_url: str, pg_schema: str):
    nc, js, topology = jetstream
    pool = await store.create_pool(database_url, pg_schema)
    async with pool.acquire() as conn:
        await migrate(conn, pg_schema)
    try:
        yield pool, Projector(pool, nc, js, topology, pg_schema, batch=50)
    finally:
        await pool.close()


async def resume_messages(js, topology) -> int:
    return (await js.stream_info(topology.resume_stream)).state.messages


async def test_repeated_scans_of_a_stalled_order_send_one_nudge_to_its_owner(jetstream, read_model):
    nc, js, topology = jetstream
    pool, projector = read_model
    log, clock = EventLog(nc, js, topology), SystemClock()
    now = clock.now_ms()
    await append(log, make(ev.OrderAccepted, "stuck", at=now - 60_000), make(ev.RoutingStarted, "stuck", seq=2,
                                                                             at=now - 60_000))
    await append(log, make(ev.OrderAccepted, "fresh", at=now))
    await append(log, *[make(cls, "rests", seq=i, at=now - 60_000, **({"order": LIMIT} if i == 1 else {}))
                        for i, cls in enumerate((ev.OrderAccepted, ev.OrderOpened), 1)])
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        async def projected() -> bool:
            return await pool.fetchval("select count(*) from orders") == 3

        await eventually(projected, timeout=15, message="orders projected")
    finally:
        stop.set()
        await task
    reconciler = Reconciler(pool, js, topology, stall_s=30)
    assert await reconciler.scan() == {"router": 1}
    assert await reconciler.scan() == {} and await reconciler.scan() == {}
    assert await resume_messages(js, topology) == 1
    msg = await js.get_last_msg(topology.resume_stream, topology.resume_subject("router", "stuck"))
    assert msg.headers["Nats-Msg-Id"] == "stuck:2"
    # A later nudge of the same order (its owner down meanwhile) takes the waiting one's place.
    assert await resume.nudge(js, topology, "router", "stuck", seq=3, status="routing")
    assert await resume_messages(js, topology) == 1


async def test_a_nudge_carries_the_stalled_orders_own_trace_and_type(jetstream, read_model):
    nc, js, topology = jetstream
    pool, projector = read_model
    log, clock = EventLog(nc, js, topology), SystemClock()
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    try:
        with tracing.span("submit order") as submitted:
            await append(log, make(ev.OrderAccepted, "traced", at=clock.now_ms() - 60_000, order=LIMIT))
            with tracing.span("route order") as routed:  # the last event's span: the nudge's parent
                await append(log, make(ev.RoutingStarted, "traced", seq=2, at=clock.now_ms() - 60_000))
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))
        try:
            async def projected() -> bool:
                return await pool.fetchval("select last_seq from orders where order_id = 'traced'") == 2

            await eventually(projected, timeout=15, message="order projected")
        finally:
            stop.set()
            await task
        assert await Reconciler(pool, js, topology, events=log, stall_s=30).scan() == {"router": 1}
    finally:
        tracing.setup("test", "none")
    msg = await js.get_last_msg(topology.resume_stream, topology.resume_subject("router", "traced"))
    context = routed.get_span_context()
    _, trace_id, parent_id, _ = msg.headers[tracing.TRACEPARENT].split("-")
    assert (trace_id, parent_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert context.trace_id == submitted.get_span_context().trace_id
    assert msg.headers[tracing.ORDER_TYPE_HEADER] == "limit"


async def test_a_stalled_order_is_found_by_the_reconciler_and_finished_by_its_owners(jetstream, read_model):
    nc, js, topology = jetstream
    pool, projector = read_model
    log, clock = EventLog(nc, js, topology), SystemClock()
    # Routing started, and the router acked the acceptance and died: nothing is pending for it.
    await append(log, make(ev.OrderAccepted, "stalled", at=clock.now_ms()),
                 make(ev.RoutingStarted, "stalled", seq=2, at=clock.now_ms()))
    await drain(nc, topology.orders_stream, "router", 1)
    router = router_of(log, clock)
    executor: Executor = await new_executor(js, topology, log, clock)
    # No consumer of order events runs for router or executor: only their nudges do. The
    # router routes the nudged order; the executor's OrderRouted is never handled, so the
    # order stalls in building until the reconciler nudges the executor too.
    reconciler = Reconciler(pool, js, topology, interval_s=0.1, stall_s=0.5)
    stop = asyncio.Event()
    started = time.monotonic()
    async with consuming(
        resume.consumer(js, topology, "router", router.resume),
        resume.consumer(js, topology, "executor", executor.resume),
    ):
        tasks = [asyncio.create_task(projector.run(stop)), asyncio.create_task(reconciler.run(stop))]
        try:
            async def confirmed() -> bool:
                return (await log.load("stalled")).state.status == "confirmed"

            await eventually(confirmed, timeout=20, message="the stalled order confirmed")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    found = await kinds(log, "stalled")
    assert found == ["OrderAccepted", "RoutingStarted", "OrderRouted", "TransactionBuilt", "TransactionSubmitted",
                     "OrderConfirmed"]
    assert time.monotonic() - started < 20
    assert await resume_messages(js, topology) == 0, "every nudge was taken and acked"


async def test_a_nudged_order_the_executor_is_already_driving_is_left_to_that_drive(jetstream):
    nc, js, topology = jetstream
    log, clock = EventLog(nc, js, topology), SystemClock()
    executor = await new_executor(js, topology, log, clock)
    executor._driving.add("busy")
    await executor.resume(resume.Resume(order_id="busy", seq=4))  # returns at once: no drive, no wait
    assert await kinds(log, "busy") == []


async def test_a_nudged_projector_folds_the_order_again_from_the_log(jetstream, read_model):
    nc, js, topology = jetstream
    pool, projector = read_model
    log = EventLog(nc, js, topology)
    await append(log, make(ev.OrderAccepted, "drift"), make(ev.RoutingStarted, "drift", seq=2))
    async with pool.acquire() as conn:  # a row the log does not back
        await conn.execute(
            "insert into order_events (order_id, seq, stream_seq, event_type, occurred_at, payload)"
            " values ('drift', 7, 99, 'OrderConfirmed', now(), '{}')"
        )
    admin = resume.consumer(js, topology, "projector", projector.resume)
    await resume.nudge(js, topology, "projector", "drift", seq=0, status="")
    async with consuming(admin):
        async def refolded() -> list:
            rows = await pool.fetch("select seq from order_events where order_id = 'drift' order by seq")
            status = await pool.fetchval("select status from orders where order_id = 'drift'")
            return [r["seq"] for r in rows] == [1, 2] and status == "routing"

        await eventually(refolded, message="the order folded again")
    async with pool.acquire() as conn:
        assert await store.position(conn) is None, "one order's fold is not the stream's position"


async def test_a_nudge_to_another_executor_while_one_waits_out_a_backoff_executes_the_order_once(jetstream):
    nc, js, topology = jetstream
    log, clock = EventLog(nc, js, topology), SystemClock()
    now = clock.now_ms()
    story = [make(cls, "backoff", seq=i, at=now - 100) for i, cls in enumerate(
        (ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, ev.TransactionBuilt), 1)]
    await append(log, *story, make(ev.AttemptFailed, "backoff", seq=5, at=now - 100, retry_at=now + 800))
    waiting = await new_executor(js, topology, log, clock)
    nudged = await new_executor(js, topology, log, clock)
    driving = asyncio.create_task(waiting.handle(story[2]))
    await eventually(lambda: "backoff" in waiting._driving, message="the first executor waits out the backoff")
    await waiting.resume(resume.Resume(order_id="backoff", seq=5))  # its own drive is on it: nothing more
    await asyncio.gather(driving, nudged.resume(resume.Resume(order_id="backoff", seq=5)))
    events = [s.event for s in (await log.load("backoff")).events]
    assert type(events[-1]) is ev.OrderConfirmed and sum(type(e) is ev.OrderConfirmed for e in events) == 1
    assert [e.attempt for e in events if isinstance(e, ev.TransactionBuilt)] == [1, 2]
    assert min(e.occurred_at for e in events if isinstance(e, ev.TransactionBuilt) and e.attempt == 2) >= now + 800
    kv = await js.key_value(topology.chain_bucket)
    assert len(await kv.keys()) == 1, "one transaction reached the chain"
