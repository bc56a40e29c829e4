"""Reading the simulated market's future, so a test can place a limit the price will cross.

The market is a pure function of (seed, slot): the test computes the same routes the
router will, slots ahead, and picks a limit that is out of reach now and reached later.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from fractions import Fraction

from services.executor.build import _single_pool, _swap_intent
from services.executor.settle import settler
from services.router.decide import NoRoute, decide
from shared import events as ev
from shared.chain import SlotClock
from shared.market.model import Market
from shared.market.tokens import get_token
from shared.simulation import SimSettings
from tests.helpers import eventually


@dataclass(frozen=True)
class Crossing:
    token_in: str
    token_out: str
    amount: str  # token units
    limit_price: str  # tokenOut per tokenIn
    min_out: int
    first_slot: int  # the first slot whose best route reaches min_out


def slot_clock(slot_ms: int) -> SlotClock:
    return SlotClock(genesis_ms=SimSettings().sim_genesis_ms, slot_ms=slot_ms, now_ms=lambda: time.time_ns() // 10**6)


def _spec(token_in: str, token_out: str, amount_in: int) -> ev.OrderSpec:
    return ev.OrderSpec(order_type="market", token_in=token_in, token_out=token_out, amount_in=amount_in,
                        slippage_bps=0, request_hash="")


def best_out(market: Market, token_in: str, token_out: str, amount_in: int, slot: int) -> int:
    try:
        return decide(_spec(token_in, token_out, amount_in), market, slot).expected_out
    except NoRoute:
        return 0


def holds(market: Market, token_in: str, token_out: str, amount_in: int, min_out: int, fire: range,
          landing_slots: int) -> bool:
    """Whether the route chosen at any slot of `fire` pays `min_out` on every slot of its landing.

    The chain settles the route the router chose when the order fired, not the best one at
    landing: a split or a venue that was best then may pay a little less a few slots on.
    """
    spec = _spec(token_in, token_out, amount_in)
    settle = settler(market)
    for slot in fire:
        try:
            route = decide(spec, market, slot)
        except NoRoute:
            return False
        intent = _swap_intent(route, _single_pool(route), spec)
        for landing in range(slot, slot + landing_slots):
            outcome = settle(intent, landing)
            if not outcome.ok or outcome.amount_out < min_out:
                return False
    return True


# Pairs whose prices move apart from each other, so one of them usually rises for a while.
DIRECTIONS = (("SOL", "USDC", "1"), ("USDC", "SOL", "100"), ("BONK", "SOL", "1000000"), ("SOL", "BONK", "1"))


def find_crossing(market: Market, slots: SlotClock, *, quiet_slots: int, within_slots: int, hold_slots: int = 24,
                  directions=DIRECTIONS) -> Crossing | None:
    """A limit above the best output of the next `quiet_slots`, then met for `hold_slots` in a row,
    where the route chosen at any slot of the first half still pays it for half as many slots.

    The quiet slots count from when the search ends (looking ahead takes a few seconds), so
    the order rests when the test places it. The run matters: quoting, building and confirming take time (more on a loaded machine),
    so a price that touches the limit briefly may be gone when the order is quoted, or when
    its transaction lands, and the order fails on slippage, as in a real market. The run
    covers the whole way from trigger to landing. None when no direction rises so within
    the window: look again later (`next_crossing`).
    """
    now = slots.current_slot()
    for token_in, token_out, amount in directions:
        dec_in = get_token(token_in).decimals
        amount_in = int(Fraction(amount) * 10**dec_in)
        outs = [best_out(market, token_in, token_out, amount_in, s) for s in range(now, now + within_slots)]
        quiet = slots.current_slot() - now + quiet_slots
        if quiet + hold_slots >= within_slots:
            break
        near = max(outs[:quiet])
        # Floors that some run of hold_slots consecutive slots after the quiet part meets,
        # highest first; the limit sits halfway between `near` and the floor, and must hold
        # from the first slot that reaches it (an earlier brief touch would fire too soon).
        floors = sorted({min(outs[i:i + hold_slots]) for i in range(quiet, within_slots - hold_slots)}, reverse=True)
        for floor in (f for f in floors if f > near):
            min_out = near + max(1, (floor - near) // 2)
            first = next(i for i, out in enumerate(outs) if out >= min_out)
            if first + hold_slots <= within_slots and min(outs[first:first + hold_slots]) >= min_out and holds(
                market, token_in, token_out, amount_in, min_out, range(now + first, now + first + hold_slots // 2),
                hold_slots // 2,
            ):
                limit = Fraction(min_out * 10**dec_in, amount_in * 10 ** get_token(token_out).decimals)
                return Crossing(token_in, token_out, amount, _decimal(limit), min_out, now + first)
    return None


async def next_crossing(market: Market, slots: SlotClock, *, quiet_slots: int, within_slots: int,
                        hold_slots: int = 24) -> Crossing:
    """The first crossing found from now on, looking again while the market does not rise."""
    return await eventually(
        lambda: asyncio.to_thread(find_crossing, market, slots, quiet_slots=quiet_slots, within_slots=within_slots,
                                  hold_slots=hold_slots),
        timeout=120,
        interval=0,
        message="a sustained rise in some direction",
    )


def _decimal(value: Fraction) -> str:
    """An exact decimal string for a fraction whose denominator has only factors 2 and 5."""
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
        assert digits < 40, f"{value} has no finite decimal form"
    whole = value * 10**digits
    text = str(whole.numerator).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}" if digits else text
