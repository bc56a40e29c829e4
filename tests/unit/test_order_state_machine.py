import itertools

import msgspec
import pytest

from shared import events as ev
from shared.orders import STATUSES, TRANSITIONS, IllegalTransition, OrderState, apply, fold
from tests.kit import HAPPY, history, make

ALL_EVENTS = list(ev.EVENT_TYPES.values())


def state_in(status: str) -> OrderState:
    """A state with every field an event might need, forced into `status`."""
    base = fold(history(*HAPPY[:4]))
    return msgspec.structs.replace(base, status=status)


@pytest.mark.parametrize(
    "status,event_cls",
    list(itertools.product([None, *STATUSES], ALL_EVENTS)),
    ids=lambda v: str(getattr(v, "__name__", v)),
)
def test_every_status_and_event_pair_is_legal_exactly_when_the_table_says_so(status, event_cls):
    expected = TRANSITIONS.get((status, event_cls.__name__))
    if status is None:
        event = make(event_cls, seq=1)
        before = None
    else:
        before = state_in(status)
        event = make(event_cls, seq=before.seq + 1, signature="sig1") if "signature" in event_cls.__struct_fields__ \
            else make(event_cls, seq=before.seq + 1)
        if event_cls is ev.TransactionBuilt:
            event = make(event_cls, seq=before.seq + 1, attempt=before.attempts + 1)
        if event_cls is ev.OrderCancelled:
            before = msgspec.structs.replace(before, transaction=None)  # between attempts
    if expected is None:
        with pytest.raises(IllegalTransition):
            apply(before, event)
    else:
        assert apply(before, event).status == expected


def test_a_confirmed_order_carries_what_it_received():
    state = fold(history(*HAPPY))
    assert state.status == "confirmed" and state.terminal
    assert state.amount_out == 149_100_000 and state.signature == "sig1" and state.seq == 6


def test_an_event_out_of_sequence_is_refused():
    state = fold(history(ev.OrderAccepted))
    with pytest.raises(IllegalTransition, match="seq"):
        apply(state, make(ev.RoutingStarted, seq=3))


def test_the_first_event_must_have_seq_one():
    with pytest.raises(IllegalTransition):
        apply(None, make(ev.OrderAccepted, seq=2))


def test_an_event_of_another_order_is_refused():
    state = fold(history(ev.OrderAccepted))
    with pytest.raises(IllegalTransition, match="applied to order"):
        apply(state, make(ev.RoutingStarted, order_id="o2", seq=2))


def test_confirming_a_signature_that_is_not_the_current_transaction_is_refused():
    state = fold(history(*HAPPY[:5]))
    with pytest.raises(IllegalTransition):
        apply(state, make(ev.OrderConfirmed, seq=6, signature="other"))


def test_a_dropped_attempt_returns_the_order_to_building_and_counts_the_attempt():
    events = history(*HAPPY[:5], ev.AttemptFailed)
    state = fold(events)
    assert state.status == "building" and state.transaction is None and state.attempts == 1
    assert state.retry_at == events[-1].retry_at and state.last_failure == "dropped"
    rebuilt = apply(state, make(ev.TransactionBuilt, seq=7, attempt=2, signature="sig2"))
    assert rebuilt.attempts == 2 and rebuilt.transaction.signature == "sig2" and rebuilt.retry_at is None


def test_an_attempt_number_that_skips_is_refused():
    state = fold(history(*HAPPY[:3]))
    with pytest.raises(IllegalTransition, match="attempt"):
        apply(state, make(ev.TransactionBuilt, seq=4, attempt=2))


def test_events_round_trip_through_the_wire_format():
    for event in history(*HAPPY):
        assert ev.decode(ev.encode(event)) == event
    wire = ev.to_builtins(history(ev.OrderAccepted)[0])
    assert wire["event"] == "OrderAccepted" and wire["orderId"] == "o1" and wire["order"]["amountIn"] == 1_000_000_000


def test_an_upcaster_rewrites_an_old_version_before_decoding(monkeypatch):
    old = b'{"event":"OrderFailed","orderId":"o1","seq":2,"eventId":"e","occurredAt":1,"correlationId":"o1","v":0,"why":"x"}'

    def v0_to_v1(raw):
        raw = dict(raw)
        raw["reason"] = raw.pop("why")
        raw["code"] = "unknown"
        raw["v"] = 1
        return raw

    monkeypatch.setitem(ev.UPCASTERS, ("OrderFailed", 0), v0_to_v1)
    event = ev.decode(old)
    assert isinstance(event, ev.OrderFailed) and event.reason == "x" and event.v == 1


def test_an_order_with_a_transaction_on_its_way_cannot_be_cancelled():
    built = fold(history(*HAPPY[:4]))
    with pytest.raises(IllegalTransition, match="too late"):
        apply(built, make(ev.OrderCancelled, seq=5))
    between_attempts = fold(history(*HAPPY[:5], ev.AttemptFailed))
    assert apply(between_attempts, make(ev.OrderCancelled, seq=7)).status == "cancelled"


def test_a_limit_order_rests_then_fires_into_routing():
    events = history(ev.OrderAccepted, ev.OrderOpened, ev.OrderTriggered, ev.OrderRouted)
    assert [s.status for s in (fold(events[:n]) for n in range(1, 5))] == ["pending", "open", "routing", "building"]


def test_a_pending_order_can_fail_before_it_is_routed_and_nothing_follows():
    state = fold(history(ev.OrderAccepted, ev.OrderFailed))
    assert state.status == "failed" and state.terminal and state.signature is None
    with pytest.raises(IllegalTransition):
        apply(state, make(ev.RoutingStarted, seq=3))
