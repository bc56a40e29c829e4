"""The consume boundary against real nats-server: settings, a killed holder, a restarted server, parking."""

import asyncio
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import nats
import nats.js.api as api
import nats.js.errors
import pytest
from prometheus_client import REGISTRY

from shared import events as ev
from shared import metrics, runtime
from shared.consumer import Consumer
from shared.durables import ConsumerSpec, ensure_consumer, order_spec
from shared.eventlog import EventLog
from shared.settings import Common
from shared.topology import Topology
from tests.helpers import eventually
from tests.kit import history, make
from tools import deadletter
from tools.devservers import start_nats
from tools.setup import provision_nats

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def js(jetstream):
    _, js, topology = jetstream
    return js, topology


async def test_a_consumer_is_created_once_and_an_existing_one_takes_the_settings_that_change_in_place(js):
    js, topology = js
    spec = ConsumerSpec(durable="worker", filter_subjects=(topology.orders_subjects,))
    await ensure_consumer(js, topology.orders_stream, spec)
    await ensure_consumer(js, topology.orders_stream, spec)
    filters = tuple(topology.event_filter("OrderAccepted", "OrderTriggered"))
    other = ConsumerSpec(durable="late", filter_subjects=filters, ack_wait=2.5, max_deliver=4)
    await js.add_consumer(topology.orders_stream, api.ConsumerConfig(
        durable_name="late", filter_subject=topology.orders_subjects, ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.NEW, ack_wait=30.0))
    await ensure_consumer(js, topology.orders_stream, other)
    info = await js.consumer_info(topology.orders_stream, "late")
    assert info.config.deliver_policy == api.DeliverPolicy.NEW  # cannot change in place: kept
    assert (info.config.ack_wait, info.config.max_deliver) == (2.5, 4)
    assert set(info.config.filter_subjects) == set(filters) and not info.config.filter_subject
    names = {c.name for c in await js.consumers_info(topology.orders_stream)}
    assert {"worker", "late"} <= names


class Seen:
    """What a handler was given, and when (monotonic seconds)."""

    def __init__(self, *, fail: bool = False):
        self.deliveries: list[tuple[str, int, float]] = []
        self._fail = fail

    async def __call__(self, event: ev.OrderEvent, msg) -> None:
        self.deliveries.append((event.order_id, msg.metadata.num_delivered, time.monotonic()))
        if self._fail:
            raise RuntimeError("this handler cannot handle anything")


async def accept(log: EventLog, order_id: str) -> None:
    await log.append(make(ev.OrderAccepted, order_id), expected_stream_seq=0)


# A consumer in a process of its own, handling one long step (kept alive by in-progress
# acks) and saying so once it has held the message for twice the ack wait.
HOLDER = """
import asyncio, sys, time
import nats
from shared.consumer import Consumer
from shared.durables import ConsumerSpec

async def main(url, stream, durable, ack_wait):
    nc = await nats.connect(url)
    async def handle(event, msg):
        print("handling", event.order_id, flush=True)
        await asyncio.sleep(2 * float(ack_wait))
        print("still handling", msg.metadata.num_delivered, flush=True)
        await asyncio.Event().wait()
    await Consumer(nc.jetstream(), stream, ConsumerSpec(durable=durable, filter_subjects=(">",)), handle).run(asyncio.Event())

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_message_held_by_a_killed_process_goes_to_another_consumer_within_the_ack_wait(jetstream, nats_url):
    nc, js, topology = jetstream
    ack_wait = 2.0
    spec = ConsumerSpec(durable="router", filter_subjects=(topology.orders_subjects,), ack_wait=ack_wait)
    await ensure_consumer(js, topology.orders_stream, spec)
    await accept(EventLog(nc, js, topology), "held1")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, nats_url, topology.orders_stream, "router", str(ack_wait),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )
    stop = asyncio.Event()
    task = None
    try:
        assert (await asyncio.wait_for(holder.stdout.readline(), 10)).split() == [b"handling", b"held1"]
        # Kept alive past the ack wait, the message was not delivered again meanwhile.
        assert (await asyncio.wait_for(holder.stdout.readline(), 10)).split() == [b"still", b"handling", b"1"]
        info = await js.consumer_info(topology.orders_stream, "router")
        assert (info.num_ack_pending, info.num_redelivered) == (1, 0)
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        seen = Seen()
        task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, seen).run(stop))
        await eventually(lambda: seen.deliveries, timeout=10, message="the message delivered again")
        [(order_id, delivered, at)] = seen.deliveries
        assert (order_id, delivered) == ("held1", 2)
        print(f"\nredelivered {at - killed:.3f} s after the holder was killed (ack wait {ack_wait:g} s)")
        assert at - killed <= ack_wait + 0.5, f"redelivered {at - killed:.2f} s after the kill"
    finally:
        stop.set()
        if task is not None:
            await task
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_a_consumer_delivers_again_within_2_s_of_its_restarted_server_being_back():
    store = Path(tempfile.mkdtemp(prefix="engine-test-restart-"))
    server = start_nats(store_dir=store)
    nc = publisher = None
    stop = asyncio.Event()
    task = None
    try:
        # Connected as the services connect (unlimited reconnects, half a second apart).
        nc = await runtime.connect_nats(Common(nats_url=server.url), "restart-test")
        js = nc.jetstream()
        topology = Topology(namespace="r" + secrets.token_hex(4))
        await provision_nats(js, topology)
        seen = Seen()
        spec = ConsumerSpec(durable="router", filter_subjects=(topology.orders_subjects,))
        task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, seen).run(stop))
        await accept(EventLog(nc, js, topology), "before")
        await eventually(lambda: len(seen.deliveries) == 1, message="the first event handled")
        port = server.port
        # Killed, it says nothing to its clients: the pull requests it held are simply gone.
        server.process.kill()
        server.stop()
        await eventually(lambda: not nc.is_connected, message="the client saw the server go")
        server = start_nats(store_dir=store, port=port)
        back = time.monotonic()
        publisher = await nats.connect(server.url)
        await accept(EventLog(publisher, publisher.jetstream(), topology), "after")
        await eventually(lambda: len(seen.deliveries) == 2, timeout=15, message="the event after the restart handled")
        resumed = seen.deliveries[1][2] - back
        print(f"\nconsumer delivered {resumed:.3f} s after nats-server was back")
        assert seen.deliveries[1][0] == "after"
        assert resumed < 2.0, f"delivered {resumed:.2f} s after the server was back"
    finally:
        stop.set()
        if task is not None:
            await task
        for client in (publisher, nc):
            if client is not None:
                await client.close()
        server.stop()
        import shutil

        shutil.rmtree(store, ignore_errors=True)


def dead_lettered(consumer: str) -> float:
    labels = {"service": metrics.service(), "consumer": consumer}
    return REGISTRY.get_sample_value("engine_events_dead_lettered_total", labels) or 0.0


async def test_an_event_a_handler_always_fails_on_is_parked_after_its_last_delivery_and_re_driven(
    jetstream, nats_url, namespace
):
    nc, js, topology = jetstream
    spec = ConsumerSpec(durable="router", filter_subjects=(topology.orders_subjects,), max_deliver=3)
    await ensure_consumer(js, topology.orders_stream, spec)
    before = dead_lettered("router")
    log = EventLog(nc, js, topology)
    for order_id in ("poison1", "poison2"):
        await accept(log, order_id)
    failing = Seen(fail=True)
    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, failing).run(stop))
    try:
        async def both_parked():
            records = await deadletter.parked(js, topology)
            return records if len(records) == 2 else None

        records = await eventually(both_parked, timeout=20, message="both events parked")
    finally:
        stop.set()
        await task
    for order_id in ("poison1", "poison2"):
        assert [n for o, n, _ in failing.deliveries if o == order_id] == [1, 2, 3]
    first, second = sorted(records, key=lambda r: r.order_id)
    assert (first.order_id, first.event_type, first.consumer, first.deliveries, first.order_seq) == (
        "poison1", "OrderAccepted", "router", 3, 1)
    assert "failed 3 times" in first.reason and "cannot handle" in first.reason
    assert (await js.stream_info(topology.deadletter_stream)).state.messages == 2
    assert dead_lettered("router") == before + 2
    assert '"orderId": "poison1"' in await deadletter.show(js, topology, first.seq)

    env = {**os.environ, "NATS_URL": nats_url, "NATS_USER": "", "NATS_PASSWORD": "", "ENGINE_NAMESPACE": namespace}
    listed = await _tool(env, "list")
    assert listed[0] == 0 and "poison1" in listed[1] and "poison2" in listed[1] and "OrderAccepted" in listed[1]
    assert (await _tool(env, "redrive", str(first.seq)))[0] == 0
    nudge = await js.get_last_msg(topology.resume_stream, topology.resume_subject("router", "poison1"))
    assert nudge.data == b'{"seq":1}'
    assert [r.order_id for r in await deadletter.parked(js, topology)] == ["poison2"]
    assert (await _tool(env, "show", str(first.seq)))[0] == 2  # gone
    assert (await _tool(env, "redrive", "--all"))[0] == 0
    await js.get_last_msg(topology.resume_stream, topology.resume_subject("router", "poison2"))
    assert await deadletter.parked(js, topology) == []
    assert await _tool(env, "list") == (0, "nothing parked: every event was handled\n")


async def _tool(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.deadletter", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode()


async def test_the_server_delivers_a_router_durable_only_the_event_types_it_acts_on(jetstream):
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    kinds = (ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, ev.TransactionBuilt, ev.OrderConfirmed)
    position = 0
    for event in history(*kinds, order_id="f1") + [make(ev.OrderTriggered, "f2", seq=3)]:
        expected = position if event.order_id == "f1" else 0
        stored = await log.append(event, expected_stream_seq=expected)
        position = stored.stream_seq if event.order_id == "f1" else position
    seen: list[tuple[str, str]] = []

    async def handle(event, msg) -> None:
        seen.append((event.order_id, type(event).__name__))

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, order_spec(topology, "router"), handle).run(stop))
    try:
        async def drained():
            info = await js.consumer_info(topology.orders_stream, "router")
            return info.num_pending == 0 and info.num_ack_pending == 0 and len(seen) == 2
        await eventually(drained, message="the router's events handled and acked")
    finally:
        stop.set()
        await task
    assert seen == [("f1", "OrderAccepted"), ("f2", "OrderTriggered")]
    info = await js.consumer_info(topology.orders_stream, "router")
    assert info.delivered.consumer_seq == 2  # nothing else was ever sent, not even to be skipped


async def test_a_batch_is_acked_only_once_its_handler_returns_retried_as_it_is_and_handed_back_on_stop(jetstream):
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    for n in range(5):
        await log.append(make(ev.OrderAccepted, f"b{n}"), expected_stream_seq=0)
    spec = order_spec(topology, "projector")
    calls: list[tuple[list[str], list[int]]] = []
    release = asyncio.Event()
    failures = 1

    async def handle(items, msgs) -> None:
        nonlocal failures
        calls.append(([e.order_id for e in items], [m.metadata.num_delivered for m in msgs]))
        await release.wait()
        if failures:
            failures -= 1
            raise RuntimeError("the read model is away")

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, handle, batch=10).run(stop))

    async def info():
        return await js.consumer_info(topology.orders_stream, spec.durable)

    try:
        await eventually(lambda: calls, message="a batch handed over")

        async def all_delivered():
            return (await info()).num_ack_pending == 5
        await eventually(all_delivered, message="all five delivered")
        assert (await info()).num_ack_pending == 5  # the handler has not returned: nothing acked
        release.set()
        await eventually(lambda: len(calls) >= 2 and not failures, message="the failed batch retried")

        async def acked():
            return (await info()).num_ack_pending == 0
        await eventually(acked, message="the batches acked once handled")
    finally:
        stop.set()
        await task
    assert calls[1][0] == calls[0][0]  # the failed batch, retried as it was
    assert sorted({order_id for ids, _ in calls for order_id in ids}) == [f"b{n}" for n in range(5)]
    assert all(delivered == [1] * len(delivered) for _, delivered in calls)  # retried in hand, not redelivered
    assert (await info()).num_redelivered == 0

    # A batch that cannot be handled when the consumer stops is handed back to the server.
    await log.append(make(ev.RoutingStarted, "b0", seq=2), expected_stream_seq=(await log.load("b0")).last_stream_seq)
    failing: list[int] = []

    async def broken(items, msgs) -> None:
        failing.extend(m.metadata.num_delivered for m in msgs)
        raise RuntimeError("still away")

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, broken, batch=10).run(stop))
    await eventually(lambda: failing, message="the new event handed over")
    stop.set()
    await task
    again: list[int] = []

    async def working(items, msgs) -> None:
        again.extend(m.metadata.num_delivered for m in msgs)

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, working, batch=10).run(stop))
    try:
        await eventually(lambda: again, message="the handed-back event delivered again")
    finally:
        stop.set()
        await task
    assert failing[0] == 1 and again == [2]


async def test_a_batch_with_a_linger_gathers_what_arrives_meanwhile_into_one_call(jetstream):
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    spec = order_spec(topology, "projector")
    calls: list[list[str]] = []

    async def handle(items, msgs) -> None:
        calls.append([e.order_id for e in items])

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, topology.orders_stream, spec, handle, batch=100, linger=2.0).run(stop))
    try:
        await log.append(make(ev.OrderAccepted, "l0"), expected_stream_seq=0)

        async def lingering() -> bool:  # delivered, held, not handed over
            return (await js.consumer_info(topology.orders_stream, spec.durable)).num_ack_pending == 1 and not calls
        await eventually(lingering, message="the first event held while the batch lingers")
        for n in range(1, 5):
            await log.append(make(ev.OrderAccepted, f"l{n}"), expected_stream_seq=0)
        await eventually(lambda: calls, timeout=5, message="the lingering batch handed over")
    finally:
        stop.set()
        await task
    assert calls == [[f"l{n}" for n in range(5)]]
