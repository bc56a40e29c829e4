"""What one applied event tells about an order's stage latencies and its outcome: pure.

The projector's fold is the one place that sees every event of every order exactly once
(a redelivered or replayed event is skipped before it gets here, and replicas share one
durable consumer), so the figures are measured here, from the events' own timestamps, and
not by the services that append them: those would count twice when two replicas race, and
none of them sees the whole order.

Stages (seconds, by order type):
- `resting`: accepted to triggered (limit and sniper orders that rested and fired);
- `accepted_to_routed`: accepted, or triggered for a resting order, to routed: the wait
  for a router and the quoting, without the rest;
- `routed_to_submitted`: routed to the first submission: building, retries at submission;
- `submitted_to_terminal`: the first submission to confirmed or failed: landing, and the
  rebuilds after a dropped transaction.
"""

from __future__ import annotations

from typing import NamedTuple

from shared import events as ev
from shared.orders import OrderState


class Timing(NamedTuple):
    stage: str
    order_type: str
    seconds: float


class Outcome(NamedTuple):
    """An order's terminal status, its type and its failure code (`none` when confirmed)."""

    status: str
    order_type: str
    code: str


def timings(before: OrderState, after: OrderState, event: ev.OrderEvent) -> tuple[Timing, ...]:
    """The stages `event` (taking the order from `before` to `after`) ends; mostly none."""
    kind, at = after.spec.order_type, event.occurred_at
    match event:
        case ev.OrderTriggered():
            return (Timing("resting", kind, _seconds(at - before.created_at)),)
        case ev.OrderRouted():
            return (Timing("accepted_to_routed", kind, _seconds(at - (before.triggered_at or before.created_at))),)
        case ev.TransactionSubmitted() if before.submitted_at is None and before.routed_at is not None:
            return (Timing("routed_to_submitted", kind, _seconds(at - before.routed_at)),)
        case ev.OrderConfirmed() | ev.OrderFailed() if before.submitted_at is not None:
            return (Timing("submitted_to_terminal", kind, _seconds(at - before.submitted_at)),)
    return ()


def outcome(state: OrderState) -> Outcome:
    return Outcome(state.status, state.spec.order_type, state.failure_code or "none")


def _seconds(ms: int) -> float:
    return max(0, ms) / 1000
