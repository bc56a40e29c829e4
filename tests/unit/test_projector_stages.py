"""Stage latencies and outcomes measured by the projector's fold, from the events' own timestamps."""

from __future__ import annotations

import msgspec

from services.projector.fold import Current, project
from services.projector.stages import Outcome, Timing
from shared import events as ev
from tests.kit import SPEC, make
from tests.unit.test_projector_fold import T0, order_story

LIMIT = msgspec.structs.replace(SPEC, order_type="limit", min_out=150_000_000)


def test_a_dropped_and_resubmitted_order_yields_each_stage_once_from_its_first_submission() -> None:
    # Events are 150 ms apart: routed at seq 3, first submitted at 5, resubmitted at 8, confirmed at 9.
    projection = project({}, enumerate(order_story("o1", "dropped"), start=1))
    assert projection.timings == [
        Timing("accepted_to_routed", "market", 0.3),
        Timing("routed_to_submitted", "market", 0.3),
        Timing("submitted_to_terminal", "market", 0.6),
    ]
    assert projection.finished == [(Outcome("confirmed", "market", "none"), 1.2)]


def test_batches_that_split_an_order_measure_what_one_batch_measures_and_a_redelivery_nothing() -> None:
    events = list(enumerate(order_story("o1", "slippage"), start=1))
    whole = project({}, events)
    current: dict[str, Current] = {}
    timings, finished = [], []
    for item in events:
        step = project(current, [item])
        current |= step.orders
        timings += step.timings
        finished += step.finished
    again = project(current, events)
    assert (timings, finished) == (whole.timings, whole.finished)
    assert finished == [(Outcome("failed", "market", "slippage_exceeded"), 0.75)]
    assert again.timings == [] and again.finished == []


def test_a_resting_order_measures_its_rest_apart_from_its_routing() -> None:
    events = [
        make(ev.OrderAccepted, seq=1, at=T0, order=LIMIT),
        make(ev.OrderOpened, seq=2, at=T0 + 10),
        make(ev.OrderTriggered, seq=3, at=T0 + 60_000),
        make(ev.OrderRouted, seq=4, at=T0 + 60_120),
    ]
    projection = project({}, enumerate(events, start=1))
    assert projection.timings == [Timing("resting", "limit", 60.0), Timing("accepted_to_routed", "limit", 0.12)]
    assert projection.finished == []


def test_cancelled_and_expired_orders_are_counted_as_outcomes_with_their_code() -> None:
    cancelled = [
        make(ev.OrderAccepted, "o1", seq=1, at=T0, order=LIMIT),
        make(ev.OrderOpened, "o1", seq=2, at=T0 + 10),
        make(ev.OrderCancelled, "o1", seq=3, at=T0 + 2_000),
    ]
    expired = [
        make(ev.OrderAccepted, "o2", seq=1, at=T0, order=LIMIT),
        make(ev.OrderOpened, "o2", seq=2, at=T0 + 10),
        make(ev.OrderExpired, "o2", seq=3, at=T0 + 5_000),
    ]
    projection = project({}, enumerate(cancelled + expired, start=1))
    assert projection.finished == [
        (Outcome("cancelled", "limit", "cancelled"), 2.0),
        (Outcome("expired", "limit", "expired"), 5.0),
    ]
    assert projection.timings == []
