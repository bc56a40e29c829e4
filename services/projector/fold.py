"""Folding logged events into read-model rows: pure, no I/O.

`project(current, batch)` takes what the read model holds for the orders in a batch and
the batch's `(stream_seq, event)` pairs, and returns the rows to write. It is idempotent:
an event at or below an order's applied `seq` is skipped, so a redelivered or replayed
batch changes nothing.

The log delivers an order's events in order, but a consumer may not: a redelivery, or two
replicas sharing one durable consumer, can hand over seq 3 of an order whose row is at
seq 1. That is a gap, not an illegal event. A first pass reports gaps (with the stream
position to read the order from); the caller reads the missing events from the log and
projects again with `final=True`, where anything still out of place is a reject.

An event the state machine refuses is a reject: it is left out of the order's history
(which readers fold again and must be able to), recorded among the rejects for operators,
and the order keeps its last valid state. The order's later events in the batch are
rejected too (they cannot follow a state that never happened), so one bad event never
wedges the projector.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import msgspec

from services.projector.stages import Outcome, Timing, outcome, timings
from shared import events as ev
from shared.orders import IllegalTransition, OrderState, apply


class Current(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the read model holds it: its folded state and where in the log it stands."""

    state: OrderState
    last_stream_seq: int


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    seq: int
    stream_seq: int
    event_type: str
    occurred_at: int  # ms since epoch
    payload: bytes  # the event as the contract encodes it


class Reject(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    order_id: str
    seq: int
    stream_seq: int
    event_type: str
    reason: str


@dataclass(slots=True)
class Projection:
    """What a batch changes in the read model."""

    orders: dict[str, Current] = field(default_factory=dict)  # only the orders that moved
    events: list[EventRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: order id -> stream position after which its missing events are to be read. A
    #: projection with gaps is incomplete: project again with those events, `final=True`.
    gaps: dict[str, int] = field(default_factory=dict)
    #: (event type, outcome) -> count; outcome is ok | duplicate | rejected
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    max_stream_seq: int = 0
    newest_occurred_at: int | None = None
    #: The stages the applied events ended (services/projector/stages.py).
    timings: list[Timing] = field(default_factory=list)
    #: The orders that reached a terminal status, each with its accepted-to-terminal seconds.
    finished: list[tuple[Outcome, float]] = field(default_factory=list)


def project(
    current: Mapping[str, Current], batch: Iterable[tuple[int, ev.OrderEvent]], *, final: bool = False
) -> Projection:
    """The rows `batch` adds to the read model holding `current`."""
    out = Projection()
    by_order: dict[str, dict[int, tuple[int, ev.OrderEvent]]] = {}
    for stream_seq, event in batch:
        out.max_stream_seq = max(out.max_stream_seq, stream_seq)
        if out.newest_occurred_at is None or event.occurred_at > out.newest_occurred_at:
            out.newest_occurred_at = event.occurred_at
        # Keyed by seq: the same event delivered twice in one batch counts once.
        by_order.setdefault(event.order_id, {}).setdefault(event.seq, (stream_seq, event))
    for order_id, events in by_order.items():
        _project_order(out, order_id, current.get(order_id), [events[s] for s in sorted(events)], final)
    return out


def _project_order(
    out: Projection, order_id: str, row: Current | None, events: list[tuple[int, ev.OrderEvent]], final: bool
) -> None:
    state = row.state if row is not None else None
    last_stream_seq = row.last_stream_seq if row is not None else 0
    applied_seq = state.seq if state is not None else 0
    blocked_by: int | None = None
    moved = False
    for stream_seq, event in events:
        kind = ev.event_type(event)
        if event.seq <= applied_seq:
            out.outcomes[kind, "duplicate"] += 1
            continue
        if not final and blocked_by is None and event.seq > applied_seq + 1:
            out.gaps[order_id] = last_stream_seq
            return
        if blocked_by is not None:
            _reject(out, stream_seq, event, f"follows rejected event seq {blocked_by}")
            continue
        try:
            before, state = state, apply(state, event)
        except IllegalTransition as exc:
            _reject(out, stream_seq, event, str(exc))
            blocked_by = event.seq
            continue
        out.events.append(
            EventRow(
                order_id=order_id,
                seq=event.seq,
                stream_seq=stream_seq,
                event_type=kind,
                occurred_at=event.occurred_at,
                payload=ev.encode(event),
            )
        )
        applied_seq, last_stream_seq, moved = event.seq, stream_seq, True
        out.outcomes[kind, "ok"] += 1
        if before is not None:
            out.timings += timings(before, state, event)
        if state.terminal:
            out.finished.append((outcome(state), max(0, state.updated_at - state.created_at) / 1000))
    if moved:
        assert state is not None
        out.orders[order_id] = Current(state=state, last_stream_seq=last_stream_seq)


def _reject(out: Projection, stream_seq: int, event: ev.OrderEvent, reason: str) -> None:
    kind = ev.event_type(event)
    out.rejects.append(
        Reject(order_id=event.order_id, seq=event.seq, stream_seq=stream_seq, event_type=kind, reason=reason)
    )
    out.outcomes[kind, "rejected"] += 1
