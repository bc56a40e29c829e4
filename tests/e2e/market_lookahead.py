"""Reading the simulated market's future, so a test can place a limit the price will cross.

The market is a pure function of (seed, slot): the test computes the same routes the
router will, slots ahead, and picks a limit that is out of reach now and reached later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

from services.router.decide import NoRoute, decide
from shared import events as ev
from shared.chain import SlotClock
from shared.market.model import Market
from shared.market.tokens import get_token
from shared.simulation import SimSettings


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


def best_out(market: Market, token_in: str, token_out: str, amount_in: int, slot: int) -> int:
    spec = ev.OrderSpec(order_type="market", token_in=token_in, token_out=token_out, amount_in=amount_in,
                        slippage_bps=0, request_hash="")
    try:
        return decide(spec, market, slot).expected_out
    except NoRoute:
        return 0


def find_crossing(market: Market, slots: SlotClock, *, quiet_slots: int, within_slots: int, hold_slots: int = 12,
                  directions=(("SOL", "USDC", "1"), ("USDC", "SOL", "100"))) -> Crossing:
    """A limit above the best output of the next `quiet_slots`, then met for `hold_slots` in a row.

    The run matters: quoting takes time, so a price that touches the limit for one slot
    may be gone when the order is quoted, as in a real market.
    """
    now = slots.current_slot()
    for token_in, token_out, amount in directions:
        dec_in = get_token(token_in).decimals
        amount_in = int(Fraction(amount) * 10**dec_in)
        outs = [best_out(market, token_in, token_out, amount_in, s) for s in range(now, now + within_slots)]
        near = max(outs[:quiet_slots])
        # The highest floor some run of hold_slots consecutive slots after the quiet part meets.
        floors = [min(outs[i:i + hold_slots]) for i in range(quiet_slots, within_slots - hold_slots)]
        if not floors or max(floors) <= near:
            continue
        min_out = near + max(1, (max(floors) - near) // 2)
        first = next(i for i, out in enumerate(outs) if out >= min_out)
        limit = Fraction(min_out * 10**dec_in, amount_in * 10 ** get_token(token_out).decimals)
        text = _decimal(limit)
        return Crossing(token_in, token_out, amount, text, min_out, now + first)
    raise AssertionError("the market does not rise in either direction within the window; widen it")


def _decimal(value: Fraction) -> str:
    """An exact decimal string for a fraction whose denominator has only factors 2 and 5."""
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
        assert digits < 40, f"{value} has no finite decimal form"
    whole = value * 10**digits
    text = str(whole.numerator).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}" if digits else text
