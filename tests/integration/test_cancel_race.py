"""Cancel racing the trigger: the log's optimistic concurrency picks exactly one outcome."""

import asyncio

import msgspec
import pytest

from services.gateway.cancel import cancel
from services.gateway.errors import ApiError
from services.router import compose
from services.router.settings import RouterSettings
from shared import events as ev
from shared.clock import SystemClock
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.market.model import Market
from tests.integration.test_executor_recovery import new_executor
from tests.kit import SPEC, history, make

LIMIT = msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", limit_price="0.000001", min_out=1)


@pytest.fixture
def env(jetstream):
    nc, js, topology = jetstream
    clock = SystemClock()
    return Emitter(EventLog(nc, js, topology), Ids(clock), clock)


async def open_order(emitter: Emitter, order_id: str) -> None:
    accepted = make(ev.OrderAccepted, order_id=order_id, order=LIMIT)
    stored = await emitter.log.append(accepted, expected_stream_seq=0)
    opened = make(ev.OrderOpened, order_id=order_id, seq=2)
    await emitter.log.append(opened, expected_stream_seq=stored.stream_seq)


async def test_cancel_and_trigger_racing_never_both_take_effect(env):
    emitter = env
    router = compose.router(RouterSettings(sim_profile="zero", sim_genesis_ms=0), emitter, Market(42))
    outcomes = {"cancelled while resting": 0, "cancelled after firing": 0}
    for n in range(40):
        order_id = f"race{n}"
        await open_order(emitter, order_id)
        racers = [router.fire(order_id, "limit reached"), cancel(order_id, SPEC.account, emitter)]
        if n % 2:
            racers.reverse()
        results = await asyncio.gather(*racers)
        fired, (state, changed) = (results if n % 2 == 0 else results[::-1])
        kinds = [type(s.event).__name__ for s in (await emitter.log.load(order_id)).events]
        # Nothing is on its way to the chain, so the cancel always lands, exactly once,
        # either before the trigger (which then does nothing) or after it.
        assert changed and state.status == "cancelled" and kinds.count("OrderCancelled") == 1
        assert kinds[-1] == "OrderCancelled"
        if "OrderTriggered" in kinds:
            assert fired is True or kinds.count("OrderRouted") == 0
            outcomes["cancelled after firing"] += 1
        else:
            assert fired is False
            outcomes["cancelled while resting"] += 1
        again_state, again_changed = await cancel(order_id, SPEC.account, emitter)
        assert again_state.status == "cancelled" and not again_changed, "cancelling twice is fine"
    assert sum(outcomes.values()) == 40 and min(outcomes.values()) > 0, outcomes


async def test_cancel_racing_the_executor_either_stops_it_or_is_refused(env, nats_url):
    emitter = env
    js = emitter.log._js
    executor = await new_executor(js, emitter.log.topology, emitter.log, SystemClock())
    seen = {"cancelled": 0, "refused": 0}
    for n in range(30):
        order_id = f"exec{n}"
        last = 0
        for event in history(ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, order_id=order_id):
            last = (await emitter.log.append(event, expected_stream_seq=last)).stream_seq
        racers = [executor.drive(order_id), cancel(order_id, SPEC.account, emitter)]
        if n % 2:
            racers.reverse()
        results = await asyncio.gather(*racers, return_exceptions=True)
        outcome = results[1] if n % 2 == 0 else results[0]
        kinds = [type(s.event).__name__ for s in (await emitter.log.load(order_id)).events]
        final = (await emitter.log.load(order_id)).state.status
        if isinstance(outcome, ApiError):
            assert outcome.status == 409 and "OrderCancelled" not in kinds
            assert final == "confirmed" and kinds.count("TransactionBuilt") == 1
            seen["refused"] += 1
        else:
            assert final == "cancelled" and "TransactionBuilt" not in kinds, "cancelled before anything was signed"
            seen["cancelled"] += 1
    assert sum(seen.values()) == 30 and min(seen.values()) > 0, seen
