"""Cancelling an order: decided by the log's optimistic concurrency, not by a lock.

A cancel races with the router firing the order and the executor building its
transaction. Each side appends against the order's last stream position; exactly one
append wins, and the loser reloads and sees what happened.
"""

from __future__ import annotations

from services.gateway.errors import ApiError
from shared import events as ev
from shared import tracing
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict
from shared.orders import OrderState


async def cancel(order_id: str, account: str, emitter: Emitter, *, attempts: int = 10) -> tuple[OrderState, bool]:
    """Cancel `account`'s order; returns its state and whether this call cancelled it.

    Raises 404 for an unknown order (or another account's) and 409 (with the current status) when the order is
    finished or its transaction may already be on its way to the chain. The cancel is a span of the order's own
    trace (continued from its first event), in error when refused.
    """
    history = await emitter.log.load(order_id)
    first = history.state
    if first is None or first.spec.account != account:
        raise _not_found(order_id)
    parent = {tracing.TRACEPARENT: history.events[0].trace}
    with tracing.span("cancel order", parent, **{"order.id": order_id, "order.type": first.spec.order_type}):
        for attempt in range(attempts):
            if attempt:
                history = await emitter.log.load(order_id)
            state = history.state
            if state is None:  # aged out of the log meanwhile
                raise _not_found(order_id)
            if state.status == "cancelled":
                return state, False
            refusal = _refusal(state)
            if refusal is not None:
                raise ApiError(409, "not_cancellable", refusal, extra={"orderId": order_id, "status": state.status})
            try:
                history = await emitter.append(history, ev.OrderCancelled, reason="cancelled by client")
            except ConcurrencyConflict:
                continue  # someone moved the order first: look again
            return history.state, True
        raise ApiError(409, "busy", "the order kept changing while cancelling; try again", extra={"orderId": order_id})


def _not_found(order_id: str) -> ApiError:
    return ApiError(404, "order_not_found", f"no order with id {order_id!r}", field="orderId")


def _refusal(state: OrderState) -> str | None:
    if state.terminal:
        return f"order is already {state.status}"
    if state.status == "submitted":
        return "the transaction was submitted to the chain; it can no longer be cancelled"
    if state.transaction is not None:
        return "a signed transaction is on its way to the chain; it can no longer be cancelled"
    return None
