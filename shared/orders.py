"""The order state machine: a pure fold of order events into the order's current state.

`apply(state, event)` is the only way an order changes. It is driven by the literal table
`TRANSITIONS`; a pair not in the table raises `IllegalTransition` before anything is
recorded. Every service and the projector use this same fold.
"""

from __future__ import annotations

from typing import Iterable, Literal

import msgspec

from shared import events as ev

Status = Literal[
    "pending", "open", "routing", "building", "submitted", "confirmed", "failed", "cancelled", "expired"
]

STATUSES: tuple[str, ...] = (
    "pending", "open", "routing", "building", "submitted", "confirmed", "failed", "cancelled", "expired"
)

TERMINAL: frozenset[str] = frozenset({"confirmed", "failed", "cancelled", "expired"})

# Where a progress bar stands in each status (0-100), as the seed clients draw it.
PROGRESS: dict[str, int] = {
    "pending": 10,
    "open": 15,
    "routing": 30,
    "building": 50,
    "submitted": 75,
    "confirmed": 100,
    "failed": 100,
    "cancelled": 100,
    "expired": 100,
}

# (status before, event type) -> status after. None is "no order yet".
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "OrderAccepted"): "pending",
    ("pending", "RoutingStarted"): "routing",
    # Refused before routing: the log stored the acceptance after its deadline, when the
    # client had already been told the submission failed (shared.acceptance).
    ("pending", "OrderFailed"): "failed",
    ("routing", "OrderRouted"): "building",
    # A route can be impossible (no pool, no fillable quote).
    ("routing", "OrderFailed"): "failed",
    ("building", "TransactionBuilt"): "building",
    ("building", "TransactionSubmitted"): "submitted",
    # Rejected at submission (node busy, unknown or expired blockhash): rebuild.
    ("building", "AttemptFailed"): "building",
    # Attempts exhausted before anything landed.
    ("building", "OrderFailed"): "failed",
    # Dropped: the blockhash expired before the transaction landed, so it never can;
    # the order goes back to building a fresh transaction.
    ("submitted", "AttemptFailed"): "building",
    ("submitted", "OrderConfirmed"): "confirmed",
    # Landed but the program failed (slippage exceeded).
    ("submitted", "OrderFailed"): "failed",
    # Limit and sniper orders rest, then fire or expire.
    ("pending", "OrderOpened"): "open",
    ("open", "OrderTriggered"): "routing",
    ("open", "OrderExpired"): "expired",
    # An immediate-or-cancel order whose limit the market does not meet on arrival.
    ("routing", "OrderExpired"): "expired",
    # Cancel is possible until a transaction exists that could still land.
    ("pending", "OrderCancelled"): "cancelled",
    ("open", "OrderCancelled"): "cancelled",
    ("routing", "OrderCancelled"): "cancelled",
    # Only between attempts (no transaction outstanding): guarded in `_changes`.
    ("building", "OrderCancelled"): "cancelled",
}


class IllegalTransition(Exception):
    """The event cannot follow the order's current state."""


class Transaction(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    attempt: int
    signature: str
    blockhash: str
    last_valid_slot: int
    submitted: bool = False
    submitted_slot: int | None = None


class OrderState(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An order as of its last event."""

    order_id: str
    status: str
    seq: int
    spec: ev.OrderSpec
    created_at: int
    updated_at: int
    route: ev.Route | None = None
    attempts: int = 0
    transaction: Transaction | None = None
    last_failure: str | None = None
    retry_at: int | None = None
    signature: str | None = None
    slot: int | None = None
    amount_out: int | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    # When each stage began (ms since epoch), for the stage latencies the projector measures.
    triggered_at: int | None = None
    routed_at: int | None = None
    submitted_at: int | None = None  # the first submission: a rebuilt transaction keeps it

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def apply(state: OrderState | None, event: ev.OrderEvent) -> OrderState:
    """Return the state after `event`, or raise `IllegalTransition`."""
    kind = type(event).__name__
    before = state.status if state is not None else None
    after = TRANSITIONS.get((before, kind))
    if after is None:
        raise IllegalTransition(f"{kind} cannot follow status {before!r} (order {event.order_id})")
    if state is None:
        if event.seq != 1:
            raise IllegalTransition(f"first event of order {event.order_id} has seq {event.seq}, not 1")
        assert isinstance(event, ev.OrderAccepted)
        return OrderState(
            order_id=event.order_id,
            status=after,
            seq=1,
            spec=event.order,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
        )
    if event.order_id != state.order_id:
        raise IllegalTransition(f"event for order {event.order_id} applied to order {state.order_id}")
    if event.seq != state.seq + 1:
        raise IllegalTransition(f"order {state.order_id} is at seq {state.seq}; event has seq {event.seq}")
    changes = _changes(state, event)
    return msgspec.structs.replace(state, status=after, seq=event.seq, updated_at=event.occurred_at, **changes)


def fold(events: Iterable[ev.OrderEvent], state: OrderState | None = None) -> OrderState | None:
    """Apply events in order, starting from `state`."""
    for event in events:
        state = apply(state, event)
    return state


def _changes(state: OrderState, event: ev.OrderEvent) -> dict:
    match event:
        case ev.OrderRouted(route=route):
            return {"route": route, "routed_at": event.occurred_at}
        case ev.OrderTriggered():
            return {"triggered_at": event.occurred_at}
        case ev.TransactionBuilt():
            if event.attempt != state.attempts + 1:
                raise IllegalTransition(f"attempt {event.attempt} built after {state.attempts} attempts")
            tx = Transaction(
                attempt=event.attempt,
                signature=event.signature,
                blockhash=event.blockhash,
                last_valid_slot=event.last_valid_slot,
            )
            return {"attempts": event.attempt, "transaction": tx, "retry_at": None}
        case ev.TransactionSubmitted():
            tx = _current_tx(state, event.signature)
            return {
                "transaction": msgspec.structs.replace(tx, submitted=True, submitted_slot=event.slot),
                "submitted_at": state.submitted_at or event.occurred_at,
            }
        case ev.AttemptFailed():
            if state.transaction is not None and event.signature not in (None, state.transaction.signature):
                raise IllegalTransition(f"failure of {event.signature} is not the current transaction")
            return {"transaction": None, "last_failure": event.reason, "retry_at": event.retry_at}
        case ev.OrderConfirmed():
            _current_tx(state, event.signature)
            return {"signature": event.signature, "slot": event.slot, "amount_out": event.amount_out}
        case ev.OrderCancelled():
            if state.transaction is not None:
                raise IllegalTransition(
                    f"order {state.order_id} has transaction {state.transaction.signature} on its way; too late to cancel"
                )
            return {"failure_reason": event.reason, "failure_code": "cancelled"}
        case ev.OrderExpired():
            return {"failure_reason": event.reason, "failure_code": "expired"}
        case ev.OrderFailed():
            tx = state.transaction
            return {
                "failure_code": event.code,
                "failure_reason": event.reason,
                "signature": tx.signature if tx is not None and tx.submitted else None,
            }
    return {}


def _current_tx(state: OrderState, signature: str) -> Transaction:
    tx = state.transaction
    if tx is None or tx.signature != signature:
        raise IllegalTransition(f"{signature} is not the order's current transaction")
    return tx
