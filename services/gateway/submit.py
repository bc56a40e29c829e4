"""Accepting an order: the first event, appended once, whatever the retries.

An order exists only if the log stores its OrderAccepted by the event's `accept_by`
(`shared.acceptance`). When the append is not confirmed by then (a timeout, no responders,
a lost connection), the submission waits a clock-skew margin past the deadline and reads
the log itself: the event stored in time is the order (2xx, as if acknowledged); otherwise
the answer is 503 with the order id it would have had, and the event, should the client
library still deliver it, lands after its deadline and is refused. A 5xx never hides an
order that will execute.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.gateway.errors import UNAVAILABLE, ApiError, log_full
from shared import events as ev
from shared import logs, metrics
from shared.acceptance import refuse_if_late, stored_in_time
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict, History
from shared.orders import OrderState, apply
from shared.retention import refused_for_room

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    state: OrderState
    created: bool  # False: an earlier submission with the same clientOrderId


@dataclass(frozen=True)
class AcceptTiming:
    """How long a submission waits for the log, and how it settles an unconfirmed append."""

    deadline_ms: int = 3_000  # accept_by = submission time + this
    #: Waited past the deadline before reading the log: covers the skew between this
    #: gateway's clock and the NATS servers' (which stamp what they store).
    clock_margin_ms: int = 500
    check_timeout_ms: int = 1_000  # for that read
    #: An unconfirmed publish is sent again after this, until the deadline.
    retry_ms: int = 1_000


async def submit(spec: ev.OrderSpec, *, emitter: Emitter, timing: AcceptTiming) -> Submitted:
    """Append OrderAccepted; a repeated clientOrderId returns the existing order.

    The order id of a keyed order is derived from the account and the key (with the
    server's secret), so every gateway replica computes the same one and the log's
    optimistic concurrency (expected last sequence 0) lets exactly one submission create it.
    """
    if spec.client_order_id:
        order_id = emitter.ids.keyed_order_id(spec.account, spec.client_order_id)
    else:
        order_id = emitter.ids.order_id()
    with logs.about(order_id):
        return await _accept(spec, order_id, emitter=emitter, timing=timing)


async def _accept(spec: ev.OrderSpec, order_id: str, *, emitter: Emitter, timing: AcceptTiming) -> Submitted:
    """The submission of `order_id`, once its id is known."""
    log_, ids, clock = emitter.log, emitter.ids, emitter.clock
    now = clock.now_ms()
    event = ev.OrderAccepted(
        order_id=order_id,
        seq=1,
        event_id=ids.event_id(),
        occurred_at=now,
        correlation_id=order_id,
        order=spec,
        accept_by=now + timing.deadline_ms,
    )
    history: History | None = None
    try:
        appended, tries = await _append_by_deadline(event, emitter, timing)
        # A duplicate after a try of ours that may have been stored is ours if it is our event.
        created = not appended.duplicate or (tries > 1 and await _first_is(event, emitter))
    except ConcurrencyConflict:
        created = False
    except UNAVAILABLE as exc:
        if refused_for_room(exc):
            raise log_full() from exc
        log.warning(
            "append unconfirmed by the deadline; reading the log",
            extra={"orderId": order_id, "acceptBy": event.accept_by, "error": repr(exc)},
        )
        history = await _settle(event, emitter, timing)
        created = history.events[0].event.event_id == event.event_id
    if created:
        metrics.ORDERS_ACCEPTED.labels(metrics.service(), spec.order_type).inc()
        return Submitted(state=history.state if history else apply(None, event), created=True)
    history = history or await log_.load(order_id, through_seq=1)  # it exists: a conflict says so
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
    try:  # a retry finds the order as the router will: refused if it arrived late
        history = await refuse_if_late(emitter, history)
    except ConcurrencyConflict:
        history = await log_.load(order_id)
    return Submitted(state=history.state, created=False)


async def _append_by_deadline(event: ev.OrderAccepted, emitter: Emitter, timing: AcceptTiming):
    """Append, publishing again while unconfirmed and the deadline allows; (Appended, tries).

    A stream whose leader is being elected (a node lost) or a broker reconnecting drops a
    publish silently; asking again each `timing.retry_ms` (the same message id: the log
    stores it once) lets the order in as soon as the log takes writes again, instead of
    spending the whole deadline on one lost request.
    """
    assert event.accept_by is not None
    tries = 0
    while True:
        left_ms = event.accept_by - emitter.clock.now_ms()
        tries += 1
        try:
            appended = await emitter.log.append(
                event, expected_stream_seq=0, timeout=max(0.05, min(left_ms, timing.retry_ms) / 1000)
            )
            return appended, tries
        except UNAVAILABLE as exc:
            if refused_for_room(exc) or left_ms <= timing.retry_ms:
                raise
            if not isinstance(exc, asyncio.TimeoutError):  # refused at once: pause before asking again
                await asyncio.sleep(min(0.1, left_ms / 1000))


async def _first_is(event: ev.OrderAccepted, emitter: Emitter) -> bool:
    history = await emitter.log.load(event.order_id, through_seq=1)
    return history.events[0].event.event_id == event.event_id


async def _settle(event: ev.OrderAccepted, emitter: Emitter, timing: AcceptTiming) -> History:
    """The order's history once its deadline has passed, if it exists by then; else 503."""
    assert event.accept_by is not None
    wait_ms = event.accept_by + timing.clock_margin_ms - emitter.clock.now_ms()
    if wait_ms > 0:
        await asyncio.sleep(wait_ms / 1000)
    try:
        async with asyncio.timeout(timing.check_timeout_ms / 1000):
            history = await emitter.log.load(event.order_id)
            # A direct get may come from a replica that lags: the leader confirms an absence.
            unreadable = not history.events and await emitter.log.held_by_leader(event.order_id) > 0
    except UNAVAILABLE:
        unreadable = True
    if unreadable:
        raise ApiError(
            503,
            "unavailable",
            "the event log did not confirm the order and cannot be read now, so it may or may not have been "
            "accepted; retry with the same clientOrderId (or read the order by orderId) in a moment",
            extra={"orderId": event.order_id},
            extra_headers={"Retry-After": "1"},
        )
    first = history.events[0] if history.events else None
    if first is None or (first.event.event_id == event.event_id and not stored_in_time(first)):
        raise ApiError(
            503,
            "not_accepted",
            f"the event log did not store the order within {timing.deadline_ms} ms; it was not accepted and "
            "will not execute. Retry with the same clientOrderId",
            extra={"orderId": event.order_id},
            extra_headers={"Retry-After": "1"},
        )
    return history
