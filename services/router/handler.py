"""Routing an accepted order: RoutingStarted, then OrderRouted or OrderFailed."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Awaitable, Callable

from services.router.decide import NoRoute, decide
from services.router.feed import QuoteFeed
from shared import events as ev
from shared import metrics
from shared.chain import SlotClock
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict
from shared.market.model import Market

log = logging.getLogger(__name__)


class Router:
    def __init__(
        self,
        emitter: Emitter,
        market: Market,
        slots: SlotClock,
        feed: QuoteFeed | None,
        *,
        quote_delay_ms: tuple[int, int] = (0, 0),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self._emit = emitter
        self._market = market
        self._slots = slots
        self._feed = feed
        self._delay = quote_delay_ms
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def handle(self, event: ev.OrderEvent, _msg=None) -> None:
        """Move the order from pending to routed; safe to run again on redelivery."""
        for _ in range(5):
            try:
                await self._route(event.order_id)
                return
            except ConcurrencyConflict:
                continue  # someone else moved the order: look again

    async def _route(self, order_id: str) -> None:
        history = await self._emit.log.load(order_id)
        state = history.state
        if state is None:
            return
        if state.status == "pending":
            history = await self._emit.append(history, ev.RoutingStarted)
        if history.state is None or history.state.status != "routing":
            return
        spec = history.state.spec
        started = time.perf_counter()
        await self._quote_latency()
        slot = self._slots.current_slot()
        quotes = self._market.quotes(spec.token_in, spec.token_out, spec.amount_in, slot)
        metrics.QUOTE_DURATION.labels(metrics.service()).observe(time.perf_counter() - started)
        if self._feed is not None:
            await self._feed.publish_quotes(quotes, slot)
        try:
            route = decide(spec, quotes, slot)
        except NoRoute as exc:
            await self._emit.append(history, ev.OrderFailed, code="no_route", reason=exc.reason)
            log.info("no route", extra={"orderId": order_id, "reason": exc.reason})
            return
        await self._emit.append(history, ev.OrderRouted, route=route)
        metrics.ROUTES_SELECTED.labels(metrics.service(), route.venue).inc()
        log.info(
            "routed",
            extra={
                "orderId": order_id,
                "venue": route.venue,
                "expectedOut": route.expected_out,
                "minOut": route.min_out,
                "quotes": {q.venue: q.amount_out for q in route.quotes},
                "slot": slot,
            },
        )

    async def _quote_latency(self) -> None:
        low, high = self._delay
        if high > 0:
            await self._sleep(self._rng.randint(low, high) / 1000)
