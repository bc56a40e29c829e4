"""An order exists only if the log stored its OrderAccepted by the event's deadline.

The gateway stops waiting for the log at the event's `accept_by` and answers the client
from what the log holds by then. A publish it gave up on can still reach the log later
(the NATS client resends what it buffered once it reconnects); such an event is stored
after its deadline, and every reader refuses it the same way, because the decision rests
only on what the log holds: the event's deadline and the time the log stored it.
"""

from __future__ import annotations

import logging

from shared import events as ev
from shared.emit import Emitter
from shared.eventlog import History, StoredEvent

log = logging.getLogger(__name__)

ACCEPT_DEADLINE_MISSED = "accept_deadline_missed"


def stored_in_time(stored: StoredEvent) -> bool:
    """False for an OrderAccepted the log stored after its `accept_by`."""
    event = stored.event
    if not isinstance(event, ev.OrderAccepted) or event.accept_by is None or stored.stored_at is None:
        return True
    return stored.stored_at <= event.accept_by


def late_reason(stored: StoredEvent) -> str:
    late_ms = (stored.stored_at or 0) - (stored.event.accept_by or 0)  # type: ignore[union-attr]
    return (
        f"the order reached the event log {late_ms} ms after its acceptance deadline, when its "
        "submission had already been answered with an error; it was not executed. "
        "Submit it again with a new clientOrderId"
    )


async def refuse_if_late(emitter: Emitter, history: History) -> History:
    """Fail a pending order whose acceptance was stored late; `history` as it is otherwise.

    Raises `ConcurrencyConflict` when another writer moved the order first.
    """
    state = history.state
    if state is None or state.status != "pending" or stored_in_time(history.events[0]):
        return history
    log.warning("acceptance stored after its deadline; refused", extra={"orderId": state.order_id})
    return await emitter.append(
        history, ev.OrderFailed, code=ACCEPT_DEADLINE_MISSED, reason=late_reason(history.events[0])
    )
