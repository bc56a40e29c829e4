"""Appending an order's next event: validated by the state machine before it is recorded."""

from __future__ import annotations

from typing import Any

from shared import events as ev
from shared.clock import Clock
from shared.eventlog import EventLog, History, StoredEvent
from shared.ids import Ids
from shared.orders import apply


class Emitter:
    def __init__(self, log: EventLog, ids: Ids, clock: Clock):
        self.log = log
        self.ids = ids
        self.clock = clock

    def next_event(self, history: History, cls: type[ev.Event], **fields: Any) -> ev.OrderEvent:
        """Build the event that follows `history`, caused by its last event."""
        state = history.state
        assert state is not None, "an order's first event is built by the gateway"
        last = history.events[-1].event if history.events else None
        return cls(
            order_id=state.order_id,
            seq=state.seq + 1,
            event_id=self.ids.event_id(),
            occurred_at=self.clock.now_ms(),
            correlation_id=state.order_id,
            causation_id=last.event_id if last is not None else None,
            **fields,
        )

    async def append(self, history: History, cls: type[ev.Event], **fields: Any) -> History:
        """Append the next event and return the history including it.

        Raises `IllegalTransition` (nothing recorded) or `ConcurrencyConflict`; on a
        duplicate of someone else's step the caller gets the reloaded history.
        """
        event = self.next_event(history, cls, **fields)
        state = apply(history.state, event)
        appended = await self.log.append(
            event, expected_stream_seq=history.last_stream_seq, order_type=state.spec.order_type
        )
        if appended.duplicate:
            return await self.log.load(state.order_id)
        stored = StoredEvent(stream_seq=appended.stream_seq, event=event)
        return History(events=history.events + (stored,), state=state, last_stream_seq=appended.stream_seq)
