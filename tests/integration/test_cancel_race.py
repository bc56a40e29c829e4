"""Cancel racing the trigger: the log's optimistic concurrency picks exactly one outcome."""

import asyncio

import msgspec
import nats
import pytest

from services.gateway.cancel import cancel
from services.gateway.errors import ApiError
from services.router.handler import Router
from shared import events as ev
from shared.chain import SlotClock
from shared.clock import SystemClock
from shared.emit import Emitter
from shared.eventlog import EventLog, ensure_streams
from shared.ids import Ids
from shared.market.model import Market
from shared.topology import Topology
from tests.kit import SPEC, make

LIMIT = msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", limit_price="0.000001", min_out=1)


@pytest.fixture
async def env(nats_url, namespace):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    topology = Topology(namespace=namespace)
    await ensure_streams(js, topology)
    clock = SystemClock()
    emitter = Emitter(EventLog(nc, js, topology), Ids(clock), clock)
    yield emitter
    await js.delete_stream(topology.orders_stream)
    await js.delete_stream(topology.quotes_stream)
    await nc.close()


async def open_order(emitter: Emitter, order_id: str) -> None:
    accepted = make(ev.OrderAccepted, order_id=order_id, order=LIMIT)
    stored = await emitter.log.append(accepted, expected_stream_seq=0)
    opened = make(ev.OrderOpened, order_id=order_id, seq=2)
    await emitter.log.append(opened, expected_stream_seq=stored.stream_seq)


async def test_cancel_and_trigger_racing_never_both_take_effect(env):
    emitter = env
    clock = SystemClock()
    router = Router(emitter, Market(42), SlotClock(genesis_ms=0, slot_ms=400, now_ms=clock.now_ms), None)
    outcomes = {"cancelled first": 0, "fired first": 0, "fired then cancelled": 0}
    for n in range(40):
        order_id = f"race{n}"
        await open_order(emitter, order_id)
        racers = [router.fire(order_id, "limit reached"), cancel(order_id, emitter)]
        if n % 2:
            racers.reverse()
        results = await asyncio.gather(*racers, return_exceptions=True)
        fired = results[0] if n % 2 == 0 else results[1]
        cancelled = results[1] if n % 2 == 0 else results[0]
        events = [s.event for s in (await emitter.log.load(order_id)).events]
        kinds = [type(e).__name__ for e in events]
        final = (await emitter.log.load(order_id)).state.status
        if isinstance(cancelled, ApiError):
            # The cancel lost: the order was routed and nothing cancelled it.
            assert cancelled.status == 409 and "OrderCancelled" not in kinds and "OrderRouted" in kinds
            assert fired is True and final == "building"
            outcomes["fired first"] += 1
        else:
            state, changed = cancelled
            assert changed and final == "cancelled" and "OrderRouted" not in kinds
            if "OrderTriggered" in kinds:
                outcomes["fired then cancelled"] += 1  # triggered, cancelled before it was routed
            else:
                assert fired is False
                outcomes["cancelled first"] += 1
        assert kinds.count("OrderCancelled") + kinds.count("OrderRouted") == 1
        again = await cancel(order_id, emitter) if final == "cancelled" else None
        if again is not None:
            assert again[1] is False, "cancelling twice is fine and changes nothing"
    assert sum(outcomes.values()) == 40
