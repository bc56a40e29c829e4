"""An acceptance stored after its deadline is refused, for every order type, before routing."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import msgspec
import nats.errors
import pytest

from services.gateway.errors import ApiError
from services.gateway.submit import AcceptTiming, Submitted, submit
from services.router import compose
from services.router.settings import RouterSettings
from shared import events as ev
from shared.acceptance import ACCEPT_DEADLINE_MISSED, stored_in_time
from shared.clock import FakeClock
from shared.emit import Emitter
from shared.eventlog import Appended, ConcurrencyConflict, History, StoredEvent
from shared.ids import Ids
from shared.market.model import Market
from shared.orders import fold
from tests.kit import SPEC, make

DEADLINE = 1_700_000_003_000

SPECS = {
    "market": SPEC,
    "limit": msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", limit_price="1", min_out=1),
    "ioc": msgspec.structs.replace(SPEC, order_type="limit", time_in_force="IOC", limit_price="1", min_out=1),
    "sniper": msgspec.structs.replace(SPEC, order_type="sniper", token_out="PUMP", slippage_bps=300),
}


class MemoryLog:
    """The order log's contract, held in memory, with the store time the test says."""

    def __init__(self, stored_at: int):
        self.stored: list[StoredEvent] = []
        self.stored_at = stored_at

    async def append(self, event: ev.OrderEvent, *, expected_stream_seq: int, timeout: float | None = None,
                     order_type: str = "") -> Appended:
        mine = [s for s in self.stored if s.event.order_id == event.order_id]
        if (mine[-1].stream_seq if mine else 0) != expected_stream_seq:
            raise ConcurrencyConflict(event.order_id)
        self.stored.append(StoredEvent(len(self.stored) + 1, event, stored_at=self.stored_at))
        return Appended(stream_seq=len(self.stored), duplicate=False)

    async def load(self, order_id: str, *, through_seq: int = 0) -> History:
        mine = tuple(s for s in self.stored if s.event.order_id == order_id)
        return History(mine, fold(s.event for s in mine), mine[-1].stream_seq if mine else 0)

    async def held_by_leader(self, order_id: str) -> int:
        return len([s for s in self.stored if s.event.order_id == order_id])

    def kinds(self, order_id: str) -> list[str]:
        return [type(s.event).__name__ for s in self.stored if s.event.order_id == order_id]


def stored(accept_by: int | None, stored_at: int | None) -> StoredEvent:
    return StoredEvent(1, make(ev.OrderAccepted, accept_by=accept_by), stored_at=stored_at)


def test_an_acceptance_stored_by_its_deadline_is_in_time_and_one_stored_after_it_is_not():
    assert stored_in_time(stored(DEADLINE, DEADLINE - 1))
    assert stored_in_time(stored(DEADLINE, DEADLINE))
    assert not stored_in_time(stored(DEADLINE, DEADLINE + 1))


def test_an_acceptance_without_a_deadline_or_a_store_time_is_in_time():
    assert stored_in_time(stored(None, DEADLINE + 60_000))  # written before deadlines existed
    assert stored_in_time(stored(DEADLINE, None))  # just appended by this process


def test_an_event_written_before_deadlines_existed_still_decodes():
    old = ev.encode(make(ev.OrderAccepted)).replace(b',"acceptBy":null', b"")
    assert b"acceptBy" not in old and ev.decode(old).accept_by is None
    assert b'"acceptBy":5' in ev.encode(make(ev.OrderAccepted, accept_by=5))


async def route(kind: str, stored_at: int) -> MemoryLog:
    log = MemoryLog(stored_at)
    clock = FakeClock(DEADLINE + 10_000)
    router = compose.router(RouterSettings(sim_profile="zero", sim_genesis_ms=0), Emitter(log, Ids(clock), clock), Market(42))
    await log.append(make(ev.OrderAccepted, order=SPECS[kind], accept_by=DEADLINE), expected_stream_seq=0)
    await router.handle(log.stored[0].event)
    return log


@pytest.mark.parametrize("kind", SPECS)
async def test_an_order_stored_after_its_deadline_fails_and_is_never_routed_or_opened(kind):
    log = await route(kind, stored_at=DEADLINE + 1)
    assert log.kinds("o1") == ["OrderAccepted", "OrderFailed"]
    state = (await log.load("o1")).state
    assert state.status == "failed" and state.failure_code == ACCEPT_DEADLINE_MISSED
    assert "1 ms after its acceptance deadline" in state.failure_reason and "new clientOrderId" in state.failure_reason


@pytest.mark.parametrize("kind", SPECS)
async def test_an_order_stored_by_its_deadline_goes_on_as_its_type_says(kind):
    log = await route(kind, stored_at=DEADLINE)
    if kind in ("limit", "sniper"):  # resting (PUMP has no pool yet)
        assert log.kinds("o1") == ["OrderAccepted", "OrderOpened"]
    else:
        assert log.kinds("o1") == ["OrderAccepted", "RoutingStarted", "OrderRouted"]


async def test_a_retry_of_an_order_stored_late_answers_it_refused_even_before_the_router_did():
    log = MemoryLog(stored_at=DEADLINE + 250)
    clock = FakeClock(DEADLINE + 10_000)
    emitter = Emitter(log, Ids(clock, secret=b"secret"), clock)
    spec = msgspec.structs.replace(SPEC, client_order_id="k1")
    order_id = emitter.ids.keyed_order_id(spec.account, "k1")
    await log.append(make(ev.OrderAccepted, order_id=order_id, order=spec, accept_by=DEADLINE), expected_stream_seq=0)
    result = await submit(spec, emitter=emitter, timing=AcceptTiming())
    assert not result.created and result.state.order_id == order_id
    assert result.state.status == "failed" and result.state.failure_code == ACCEPT_DEADLINE_MISSED
    assert log.kinds(order_id) == ["OrderAccepted", "OrderFailed"]


class UnacknowledgedLog(MemoryLog):
    """Appends time out; the event is stored (or not), and a lagging replica may hide it."""

    def __init__(self, stored_at: int, *, stores: bool, replica_lags: bool = False):
        super().__init__(stored_at)
        self.stores = stores
        self.replica_lags = replica_lags

    async def append(self, event, *, expected_stream_seq, timeout=None, order_type=""):
        if event.seq == 1:
            if self.stores:
                await super().append(event, expected_stream_seq=expected_stream_seq)
            raise nats.errors.TimeoutError
        return await super().append(event, expected_stream_seq=expected_stream_seq)

    async def load(self, order_id: str, *, through_seq: int = 0) -> History:
        return History((), None, 0) if self.replica_lags else await super().load(order_id)


NO_WAIT = AcceptTiming(deadline_ms=0, clock_margin_ms=0)


async def submit_to(log: MemoryLog) -> Submitted:
    clock = FakeClock(DEADLINE)
    emitter = Emitter(log, Ids(clock, secret=b"secret"), clock)
    return await submit(msgspec.structs.replace(SPEC, client_order_id="k2"), emitter=emitter, timing=NO_WAIT)


async def test_an_unacknowledged_order_stored_by_its_deadline_is_accepted():
    result = await submit_to(UnacknowledgedLog(stored_at=DEADLINE, stores=True))
    assert result.created and result.state.status == "pending"


async def test_an_unacknowledged_order_stored_after_its_deadline_is_not_accepted():
    with pytest.raises(ApiError) as refused:
        await submit_to(UnacknowledgedLog(stored_at=DEADLINE + 1, stores=True))
    assert (refused.value.status, refused.value.error) == (503, "not_accepted") and refused.value.extra["orderId"]


async def test_an_unacknowledged_order_the_log_does_not_hold_is_not_accepted():
    with pytest.raises(ApiError) as refused:
        await submit_to(UnacknowledgedLog(stored_at=DEADLINE, stores=False))
    assert (refused.value.status, refused.value.error) == (503, "not_accepted")


async def test_an_order_a_lagging_replica_does_not_show_but_the_leader_holds_is_not_called_absent():
    with pytest.raises(ApiError) as refused:
        await submit_to(UnacknowledgedLog(stored_at=DEADLINE, stores=True, replica_lags=True))
    assert (refused.value.status, refused.value.error) == (503, "unavailable") and refused.value.extra["orderId"]


class LosesFirstPublish(MemoryLog):
    """The first publish of an acceptance gets no answer (stored or not); the next one does."""

    def __init__(self, stored_at: int, *, first_stored: bool):
        super().__init__(stored_at)
        self.first_stored = first_stored
        self.publishes = 0

    async def append(self, event, *, expected_stream_seq, timeout=None, order_type=""):
        if event.seq != 1:
            return await super().append(event, expected_stream_seq=expected_stream_seq)
        self.publishes += 1
        if self.publishes == 1:
            if self.first_stored:
                await super().append(event, expected_stream_seq=expected_stream_seq)
            raise nats.errors.TimeoutError
        if self.stored:  # the log's message-id dedupe: stored once
            return Appended(stream_seq=self.stored[0].stream_seq, duplicate=True)
        return await super().append(event, expected_stream_seq=expected_stream_seq)


@pytest.mark.parametrize("first_stored", [True, False], ids=["ack-lost", "publish-lost"])
async def test_an_unconfirmed_publish_is_sent_again_within_the_deadline_and_the_order_is_created_once(first_stored):
    log = LosesFirstPublish(stored_at=DEADLINE - 2_000, first_stored=first_stored)
    clock = FakeClock(DEADLINE - 3_000)
    emitter = Emitter(log, Ids(clock, secret=b"secret"), clock)
    result = await submit(msgspec.structs.replace(SPEC, client_order_id="k3"), emitter=emitter,
                          timing=AcceptTiming(deadline_ms=3_000, retry_ms=1_000))
    assert log.publishes == 2 and len(log.stored) == 1
    assert result.created and result.state.status == "pending"


class CountingLoads(MemoryLog):
    def __init__(self, stored_at: int):
        super().__init__(stored_at)
        self.loads = 0

    async def load(self, order_id: str, *, through_seq: int = 0) -> History:
        self.loads += 1
        return await super().load(order_id, through_seq=through_seq)


def delivery(stream_seq: int, stored_at_ms: int) -> SimpleNamespace:
    """A consumer's message as the router sees it: stream position and store time."""
    stamp = datetime.fromtimestamp(stored_at_ms / 1000, timezone.utc)
    return SimpleNamespace(headers=None, metadata=SimpleNamespace(sequence=SimpleNamespace(stream=stream_seq), timestamp=stamp))


async def deliver_first_event(log: CountingLoads, delivered_at_ms: int) -> None:
    clock = FakeClock(DEADLINE + 10_000)
    router = compose.router(RouterSettings(sim_profile="zero", sim_genesis_ms=0), Emitter(log, Ids(clock), clock), Market(42))
    if not log.stored:
        await log.append(make(ev.OrderAccepted, accept_by=DEADLINE), expected_stream_seq=0)
    await router.handle(log.stored[0].event, delivery(log.stored[0].stream_seq, delivered_at_ms))


async def test_a_delivered_acceptance_is_routed_without_reading_the_log():
    log = CountingLoads(stored_at=DEADLINE - 1_000)
    await deliver_first_event(log, DEADLINE - 1_000)
    assert log.kinds("o1") == ["OrderAccepted", "RoutingStarted", "OrderRouted"]
    assert log.loads == 0


async def test_a_delivered_acceptance_the_log_has_moved_past_is_read_again_and_left_alone():
    log = CountingLoads(stored_at=DEADLINE - 1_000)
    accepted = make(ev.OrderAccepted, accept_by=DEADLINE)
    await log.append(accepted, expected_stream_seq=0)
    await log.append(make(ev.OrderCancelled, seq=2, reason="user"), expected_stream_seq=1)
    await deliver_first_event(log, DEADLINE - 1_000)
    assert log.kinds("o1") == ["OrderAccepted", "OrderCancelled"]
    assert log.loads == 1


@pytest.mark.parametrize("delivered_at", [DEADLINE - 1, DEADLINE, DEADLINE + 1])
async def test_near_or_past_its_deadline_a_delivered_acceptance_is_judged_by_the_log_stamp(delivered_at):
    log = CountingLoads(stored_at=DEADLINE + 1)
    await deliver_first_event(log, delivered_at)
    assert log.loads == 1
    assert log.kinds("o1") == ["OrderAccepted", "OrderFailed"]
