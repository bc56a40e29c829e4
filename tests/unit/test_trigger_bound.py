"""The trigger loop's price bound per direction: remembering the probe size changes no answer."""

from __future__ import annotations

from services.router.book import LimitBook
from services.router.triggers import Triggers
from shared.chain import SlotClock
from shared.clock import FakeClock
from shared.market.model import Market

DIRECTIONS = [("SOL", "USDC"), ("USDC", "SOL"), ("BONK", "SOL"), ("SOL", "USDT")]


def triggers(market: Market) -> Triggers:
    clock = FakeClock()
    return Triggers(LimitBook(), None, market, SlotClock(0, 400, clock.now_ms), clock)  # type: ignore[arg-type]


def test_a_bound_found_from_the_last_probe_is_the_bound_found_from_one_whole_token() -> None:
    market = Market(42)
    remembering = triggers(market)
    for slot in range(10_000_000, 10_000_000 + 3_000, 150):
        for token_in, token_out in DIRECTIONS:
            fresh = triggers(market)._bound(token_in, token_out, slot)
            assert remembering._bound(token_in, token_out, slot) == fresh is not None


def test_a_cheap_token_is_probed_from_the_size_that_sufficed_before() -> None:
    market = Market(42)
    bounds = triggers(market)
    bounds._bound("BONK", "SOL", 10_000_000)
    probe = bounds._probes[("BONK", "SOL")]
    assert probe > 10**5, "one whole BONK gets less than the probe output"
    assert bounds._bound("BONK", "SOL", 10_000_001)[1] == probe * 10_000


def test_after_a_large_move_the_probe_steps_back_down_to_the_smallest_that_suffices() -> None:
    market = Market(42)
    bounds = triggers(market)
    bounds._probes[("BONK", "SOL")] = 10**14  # as if BONK had since risen a thousandfold
    assert bounds._bound("BONK", "SOL", 10_000_000) == triggers(market)._bound("BONK", "SOL", 10_000_000)
    assert bounds._probes[("BONK", "SOL")] < 10**13
