"""Firing resting orders: once a slot, touch only the orders the market now reaches.

For each direction with resting limit orders, the best price of a small swap bounds
what any size can get (output is concave in input), so only the orders whose limit is
at or below that bound (a slice of the sorted book) get an exact quote for their own
size. Sniper orders are checked against the pools that exist now; expiries come from a
heap. A firing is an append against the order's last position, so two replicas (or a
cancel) racing for one order produce exactly one outcome. Each firing or expiry is a span
of the order's trace, continued from its acceptance's context kept in the book, so an
order that fires is one trace from acceptance to its end.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.router.book import LimitBook, RestingOrder
from services.router.book_state import expiry_reason
from services.router.decide import NoRoute, decide
from services.router.handler import Router
from shared import events as ev
from shared import logs, metrics, tracing
from shared.chain import SlotClock
from shared.clock import Clock
from shared.market.model import Market
from shared.market.tokens import get_token

log = logging.getLogger(__name__)

#: Candidates are taken up to this much above the small-swap price, so an order whose
#: exact size would just fill is never missed because of the probe's own size.
MARGIN_BPS = 10
PROBE_OUTPUT = 1_000_000


class Triggers:
    def __init__(self, book: LimitBook, router: Router, market: Market, slots: SlotClock, clock: Clock,
                 *, concurrency: int = 64):
        self._book = book
        self._router = router
        self._market = market
        self._slots = slots
        self._clock = clock
        self._slots_free = asyncio.Semaphore(concurrency)
        self._busy: set[str] = set()
        #: Orders whose exact quote missed their floor, with the price bound of that try.
        self._held: dict[str, tuple[int, int]] = {}
        self._bounds: dict[tuple[str, str], tuple[int, int] | None] = {}
        self._bounds_slot = -1
        #: The probe size that sufficed last time, per direction.
        self._probes: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task] = set()
        self.last_tick_ms = 0.0
        self.last_touched = 0

    async def run(self, stop: asyncio.Event, armed: asyncio.Event) -> None:
        await armed.wait()
        last = -1
        while not stop.is_set():
            slot = self._slots.current_slot()
            if slot != last:
                last = slot
                self.tick(slot)
            next_ms = self._slots.ms_of(slot + 1) - self._clock.now_ms()
            try:
                await asyncio.wait_for(stop.wait(), max(0.001, next_ms / 1000))
            except asyncio.TimeoutError:
                pass
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    def tick(self, slot: int) -> int:
        """Schedule every firing and expiry due in `slot`; returns how many orders were touched."""
        started = time.perf_counter()
        touched = 0
        if slot % 100 == 0:  # forget held orders that left the book
            self._held = {k: v for k, v in self._held.items() if k in self._book}
        for order in self._book.due(self._clock.now_ms()):
            touched += self._spawn(order, "expire resting order",
                                   self._router.expire(order.order_id, expiry_reason(order)))
        for token_in, token_out in self._book.sides():
            bound = self._bound(token_in, token_out, slot)
            if bound is None:
                continue
            for order in self._book.candidates(token_in, token_out, *bound):
                held = self._held.get(order.order_id)
                if held is not None and bound[0] * held[1] <= held[0] * bound[1]:
                    continue  # its own size missed at a price at least this good: wait for better
                touched += self._spawn(order, "fire resting order", self._fire_limit(order, slot))
        for token_a, token_b in self._book.sniper_pairs():
            if self._market.pools_for(token_a, token_b, slot):
                for order in self._book.waiting_for_pair(token_a, token_b):
                    touched += self._spawn(
                        order, "fire resting order", self._router.fire(order.order_id, f"pool open in slot {slot}")
                    )
        self.last_tick_ms = (time.perf_counter() - started) * 1000
        self.last_touched = touched
        metrics.bound(metrics.TRIGGER_TICK).observe(self.last_tick_ms / 1000)
        metrics.bound(metrics.RESTING_ORDERS).set(len(self._book))
        return touched

    async def _fire_limit(self, order: RestingOrder, slot: int) -> None:
        fired = await self._router.fire(order.order_id, f"limit reached in slot {slot}")
        checked = self._router.checked_slots.pop(order.order_id, slot)
        if fired:
            self._held.pop(order.order_id, None)
            return
        # Held at the prices of the slot it was actually quoted in (quoting takes time, and
        # the market may have moved since the tick): retried once the market beats them.
        bound = self._bound(order.token_in, order.token_out, checked)
        if bound is not None:
            self._held[order.order_id] = bound

    def _bound(self, token_in: str, token_out: str, slot: int) -> tuple[int, int] | None:
        """`_price_bound`, computed once per direction and slot."""
        if slot != self._bounds_slot:
            self._bounds, self._bounds_slot = {}, slot
        key = (token_in, token_out)
        if key not in self._bounds:
            self._bounds[key] = self._price_bound(token_in, token_out, slot)
        return self._bounds[key]

    def _price_bound(self, token_in: str, token_out: str, slot: int) -> tuple[int, int] | None:
        """The best price a small swap gets, raised by the margin, as (num, den) in base units.

        The probe is the smallest whole-token power of ten whose output has at least a
        million base units, so rounding stays far below the margin. Prices move slowly, so
        the search starts one step below the probe that sufficed last time (a cheap token
        needs several steps up from one whole token, each a full routing decision).
        """
        unit = 10 ** get_token(token_in).decimals
        probe = max(unit, self._probes.get((token_in, token_out), unit) // 10)
        out = self._probe(token_in, token_out, probe, slot)
        if out is None:
            return None
        if out >= PROBE_OUTPUT:
            while probe > unit:  # the price rose: a smaller probe may do
                smaller = self._probe(token_in, token_out, probe // 10, slot)
                if smaller is None:
                    return None
                if smaller < PROBE_OUTPUT:
                    break
                probe, out = probe // 10, smaller
        else:
            while out < PROBE_OUTPUT and probe < unit * 10**11:
                probe *= 10
                out = self._probe(token_in, token_out, probe, slot)
                if out is None:
                    return None
        self._probes[(token_in, token_out)] = probe
        return out * (10_000 + MARGIN_BPS), probe * 10_000

    def _probe(self, token_in: str, token_out: str, amount_in: int, slot: int) -> int | None:
        spec = ev.OrderSpec(order_type="market", token_in=token_in, token_out=token_out, amount_in=amount_in,
                            slippage_bps=0, request_hash="")
        try:
            return decide(spec, self._market, slot).expected_out
        except NoRoute:
            return None

    def _spawn(self, order: RestingOrder, name: str, work) -> int:
        """Run `work` for `order` unless a step of it runs already; the step is span `name` of the order's trace."""
        order_id = order.order_id
        if order_id in self._busy:
            work.close()
            return 0
        self._busy.add(order_id)

        async def guarded() -> None:
            async with self._slots_free:
                with logs.about(order_id), tracing.span(name, {tracing.TRACEPARENT: order.trace},
                                                        **{"order.id": order_id, "order.type": order.kind}) as span:
                    try:
                        await work
                    except Exception as exc:
                        span.record_exception(exc)
                        tracing.failed(f"{type(exc).__name__}: {exc}", span)
                        log.exception("resting order step failed")
                    finally:
                        self._busy.discard(order_id)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 1
