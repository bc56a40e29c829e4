"""Accepting an order: the first event, appended once, whatever the retries."""

from __future__ import annotations

from dataclasses import dataclass

from services.gateway.errors import ApiError
from shared import events as ev
from shared import metrics
from shared.clock import Clock
from shared.eventlog import ConcurrencyConflict, EventLog
from shared.ids import Ids
from shared.orders import OrderState, apply


@dataclass(frozen=True)
class Submitted:
    state: OrderState
    created: bool  # False: an earlier submission with the same clientOrderId


async def submit(spec: ev.OrderSpec, *, log: EventLog, ids: Ids, clock: Clock) -> Submitted:
    """Append OrderAccepted; a repeated clientOrderId returns the existing order.

    The order id of a keyed order is derived from the account and the key (with the
    server's secret), so every gateway replica computes the same one and the log's
    optimistic concurrency (expected last sequence 0) lets exactly one submission create it.
    """
    if spec.client_order_id:
        order_id = ids.keyed_order_id(spec.account, spec.client_order_id)
    else:
        order_id = ids.order_id()
    now = clock.now_ms()
    event = ev.OrderAccepted(
        order_id=order_id,
        seq=1,
        event_id=ids.event_id(),
        occurred_at=now,
        correlation_id=order_id,
        order=spec,
    )
    try:
        appended = await log.append(event, expected_stream_seq=0)
    except ConcurrencyConflict:
        appended = None
    if appended is not None and not appended.duplicate:
        metrics.ORDERS_ACCEPTED.labels(metrics.service(), spec.order_type).inc()
        return Submitted(state=apply(None, event), created=True)
    history = await log.load(order_id)
    existing = history.state
    assert existing is not None, "a conflict on a new order means the order exists"
    if existing.spec.request_hash != spec.request_hash:
        raise ApiError(
            409,
            "client_order_id_conflict",
            f"clientOrderId {spec.client_order_id!r} was already used for a different order",
            field="clientOrderId",
            extra={"orderId": order_id},
        )
    return Submitted(state=existing, created=False)
