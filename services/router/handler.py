"""Routing orders: market orders at once, limit and sniper orders when they fire.

Every step appends against the order's last position in the log, so a cancel, another
replica or a redelivery racing with this one is settled by the log: the loser's append
conflicts, it reloads, and finds nothing left to do. A delivered OrderAccepted is taken as
the order's whole history without reading the log, since it is its first event; if the
log has moved on since, the first append conflicts and the order is reloaded.

A resting order fires in two appends (OrderTriggered, then OrderRouted) from the trigger
loop. The consumer also takes OrderTriggered, and a resume nudge: if the order is still in
routing once the trigger loop had its time, the consumer routes it, so a router that dies
between the two appends strands nothing.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import random
import time
from typing import Awaitable, Callable

from services.router.decide import NoRoute, decide
from shared import events as ev
from shared import metrics
from shared.amounts import format_amount
from shared.acceptance import refuse_if_late
from shared.chain import SlotClock
from shared.consumer import Retry
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict, History, StoredEvent, stream_seq_of
from shared.market.model import Market
from shared.market.tokens import get_token
from shared.orders import fold
from shared.resume import Resume

log = logging.getLogger(__name__)


class Router:
    def __init__(
        self,
        emitter: Emitter,
        market: Market,
        slots: SlotClock,
        *,
        quote_delay_ms: tuple[int, int] = (0, 0),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        trigger_grace_ms: int = 2_000,
    ):
        self._emit = emitter
        self._market = market
        self._slots = slots
        self._delay = quote_delay_ms
        self._sleep = sleep
        self._rng = rng or random.Random()
        #: How long the trigger loop that fired an order has to route it before the consumer does.
        self._trigger_grace_ms = trigger_grace_ms
        #: The slot each order was last quoted in (read by the trigger loop, then dropped).
        self.checked_slots: dict[str, int] = {}

    async def handle(self, event: ev.OrderEvent, msg=None) -> None:
        """Consumer entry for OrderAccepted and OrderTriggered; safe to run again on redelivery.

        A fresh OrderTriggered is the trigger loop's to finish: it is looked at again after
        the grace period, and routed here only if the order is still in routing then.
        """
        if isinstance(event, ev.OrderTriggered):
            left_ms = event.occurred_at + self._trigger_grace_ms - self._emit.clock.now_ms()
            if left_ms > 0:
                raise Retry("the trigger loop is routing the order", delay=left_ms / 1000)
        elif msg is not None and (delivered := _delivered_history(event, msg)) is not None:
            try:
                return await self._accept_from(delivered)
            except ConcurrencyConflict:
                pass  # the log moved past the delivered event: read it below
        await self._retrying(self._accept, event.order_id, event.seq)

    async def resume(self, nudge: Resume, _msg=None) -> None:
        """Consumer entry for a resume nudge: the same idempotent step as for OrderAccepted."""
        await self._retrying(self._accept, nudge.order_id, nudge.seq)

    async def fire(self, order_id: str, reason: str) -> bool:
        """Trigger a resting order if the market now meets its floor; True if it fired.

        `last_check_slot` then holds the slot whose prices the decision used. An order
        contended past the tries is left for the next slot (or the consumer, once triggered).
        """
        try:
            return bool(await self._retrying(self._fire, order_id, reason))
        except Retry:
            return False

    async def expire(self, order_id: str, reason: str) -> None:
        """Expire a resting order; one contended past the tries stays due for the next slot."""
        try:
            await self._retrying(self._expire, order_id, reason)
        except Retry as exc:
            log.info("expiry deferred", extra={"orderId": order_id, "reason": str(exc)})

    async def _retrying(self, step, *args):
        """Run `step`, reloading after each lost race; `Retry` (redeliver later) after five."""
        for _ in range(5):
            try:
                return await step(*args)
            except ConcurrencyConflict:
                continue  # someone else moved the order: look again
        raise Retry(f"{args[0]}: lost five races to other writers in a row", delay=0.5)

    async def _accept(self, order_id: str, through_seq: int = 0) -> None:
        await self._accept_from(await self._emit.log.load(order_id, through_seq=through_seq))

    async def _accept_from(self, history: History) -> None:
        state = history.state
        if state is None:
            return
        history = await refuse_if_late(self._emit, history)
        state = history.state
        spec = state.spec
        if state.status == "pending":
            if spec.order_type == "sniper" or (spec.order_type == "limit" and spec.time_in_force != "IOC"):
                trigger = "pool_launch" if spec.order_type == "sniper" else "limit_price"
                history = await self._emit.append(
                    history, ev.OrderOpened, trigger=trigger, pair=f"{spec.token_in}-{spec.token_out}"
                )
                if spec.order_type == "sniper" and self._market.pools_for(
                    spec.token_in, spec.token_out, self._slots.current_slot()
                ):
                    await self._route(history, triggered="pool already open")  # no need to wait for a slot
                    self.checked_slots.pop(state.order_id, None)
                return
            history = await self._emit.append(history, ev.RoutingStarted)
        if history.state.status == "routing":
            await self._route(history)

    async def _route(self, history: History, *, triggered: str | None = None) -> bool:
        """Quote, decide and append the decision; an IOC limit that cannot fill expires."""
        state = history.state
        spec = state.spec
        started = time.perf_counter()
        await self._quote_latency()
        slot = self._slots.current_slot()
        if triggered is not None:
            self.checked_slots[state.order_id] = slot
        try:
            route = decide(spec, self._market, slot)
        except NoRoute as exc:
            if triggered is not None:
                return False
            await self._emit.append(history, ev.OrderFailed, code="no_route", reason=exc.reason)
            log.info("no route", extra={"orderId": state.order_id, "reason": exc.reason})
            return True
        finally:
            metrics.bound(metrics.QUOTE_DURATION).observe(time.perf_counter() - started)
        floor = spec.min_out or 0
        # A fired order resumed after its trigger is routed whatever the price now: it was
        # triggered, and its route's minimum output holds the limit on chain.
        if route.expected_out < floor and not _was_triggered(history):
            if triggered is not None:
                return False  # not yet: the order keeps resting
            # Only an immediate-or-cancel limit is routed untriggered with a floor.
            decimals = get_token(spec.token_out).decimals
            reason = (f"immediate-or-cancel: the best route pays {format_amount(route.expected_out, decimals)} "
                      f"{spec.token_out}, below the limit's {format_amount(floor, decimals)} {spec.token_out}")
            await self._emit.append(history, ev.OrderExpired, reason=reason)
            return True
        if triggered is not None:
            history = await self._emit.append(
                history, ev.OrderTriggered, slot=slot, reason=triggered, best_out=route.expected_out
            )
        await self._emit.append(history, ev.OrderRouted, route=route)
        metrics.bound(metrics.ROUTES_SELECTED, route.venue).inc()
        log.info(
            "routed",
            extra={
                "orderId": state.order_id,
                "kind": route.kind,
                "venue": route.venue,
                "expectedOut": route.expected_out,
                "minOut": route.min_out,
                "gainBps": route.gain_bps,
                "candidates": {c.description: c.amount_out for c in route.candidates},
                "slot": slot,
            },
        )
        return True

    async def _fire(self, order_id: str, reason: str) -> bool:
        history = await self._emit.log.load(order_id)
        if history.state is None or history.state.status != "open":
            return False
        return await self._route(history, triggered=reason)

    async def _expire(self, order_id: str, reason: str) -> None:
        history = await self._emit.log.load(order_id)
        if history.state is not None and history.state.status == "open":
            await self._emit.append(history, ev.OrderExpired, reason=reason)

    async def _quote_latency(self) -> None:
        low, high = self._delay
        if high > 0:
            await self._sleep(self._rng.randint(low, high) / 1000)


def _delivered_history(event: ev.OrderEvent, msg) -> History | None:
    """The history a delivered first event makes up, or None when the log must be read.

    The acceptance deadline check needs the time the log stored the event; the delivery's
    timestamp is rounded to microseconds, so within a millisecond of the deadline the
    log's own stamp decides, as it does for every other reader.
    """
    if not isinstance(event, ev.OrderAccepted) or event.seq != 1:
        return None
    stamp = msg.metadata.timestamp
    stored_at = calendar.timegm(stamp.utctimetuple()) * 1000 + stamp.microsecond // 1000
    if event.accept_by is not None and stored_at >= event.accept_by - 1:
        return None
    stream_seq = stream_seq_of(msg)
    return History(
        events=(StoredEvent(stream_seq=stream_seq, event=event, stored_at=stored_at),),
        state=fold((event,)),
        last_stream_seq=stream_seq,
    )


def _was_triggered(history: History) -> bool:
    return any(isinstance(s.event, ev.OrderTriggered) for s in history.events)
