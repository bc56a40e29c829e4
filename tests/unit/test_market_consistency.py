"""The simulated market is arbitrage-consistent: cross rates agree, no cycle of pools pays."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.optimize import optimize
from shared.market.config import DEFAULT_CONFIG, CpmmSpec, MarketConfig, PairSpec, PricePath
from shared.market.fixed_point import ONE
from shared.market.launches import PoolLaunch, new_launch
from shared.market.model import InconsistentPrices, Market, UnknownPool
from shared.market.tokens import get_token

MARKET = Market(seed=42)
slots = st.integers(min_value=0, max_value=10**9)
HUNDREDTH_BP = Fraction(1, 1_000_000)
ARBITRAGE_SLOTS = PricePath().arbitrage_slots


def rate(market: Market, token_in: str, token_out: str, slot: int) -> Fraction:
    """Whole ``token_out`` per whole ``token_in`` at the reference price of their pair."""
    for pair in market.pairs():
        if {pair.base, pair.quote} == {token_in, token_out}:
            units = Fraction(market.reference_price_q64(pair.pair_id, slot), ONE)
            price = units * 10 ** get_token(pair.base).decimals / 10 ** get_token(pair.quote).decimals
            return price if pair.base == token_in else 1 / price
    raise AssertionError(f"no pair for {token_in}/{token_out}")


def gap(direct: Fraction, via: Fraction) -> Fraction:
    return abs(via / direct - 1)


TRIANGLES = [("SOL", "USDT", "USDC"), ("USDC", "SOL", "USDT"), ("BONK", "SOL", "USDC"), ("BONK", "USDC", "SOL")]


# cross rates


@settings(max_examples=60)
@given(slots)
def test_a_direct_rate_equals_the_rate_through_an_intermediate_token(slot):
    for start, middle, end in TRIANGLES:
        direct = rate(MARKET, start, end, slot)
        via = rate(MARKET, start, middle, slot) * rate(MARKET, middle, end, slot)
        assert gap(direct, via) <= HUNDREDTH_BP, (start, middle, end, slot)


@settings(max_examples=30)
@given(slots)
def test_every_pair_s_reference_price_is_the_ratio_of_its_tokens_dollar_values(slot):
    for pair in MARKET.pairs():
        base, quote = (Fraction(Decimal(MARKET.usd_price(symbol, slot))) for symbol in (pair.base, pair.quote))
        assert gap(rate(MARKET, pair.base, pair.quote, slot), base / quote) <= HUNDREDTH_BP, pair.pair_id


@settings(max_examples=40)
@given(slots)
def test_stablecoins_stay_within_a_few_basis_points_of_a_dollar(slot):
    for symbol in ("USDC", "USDT"):
        assert abs(Decimal(MARKET.usd_price(symbol, slot)) - 1) <= Decimal("0.0016")
    assert abs(rate(MARKET, "USDC", "USDT", slot) - 1) <= Fraction(32, 10_000)


def test_genesis_dollar_values_follow_from_the_configured_pair_prices():
    values = {symbol: MARKET.usd_price(symbol, 0) for symbol in ("USDC", "USDT", "SOL", "BONK", "JUP", "RAY", "WIF")}
    assert values == {"USDC": "1", "USDT": "1", "SOL": "150", "BONK": "0.00002025", "JUP": "0.85", "RAY": "3.3",
                      "WIF": "1.995"}


def test_a_token_no_pair_lists_has_no_dollar_value():
    with pytest.raises(UnknownPool, match="no pair lists PUMP"):
        MARKET.usd_price("PUMP", 0)
    launched = Market(seed=42, launches=[new_launch("PUMP-USDC", listed_at_slot=100, price="0.002")])
    with pytest.raises(UnknownPool, match="PUMP is not listed until slot 100"):
        launched.usd_price("PUMP", 99)
    assert Decimal(launched.usd_price("PUMP", 100)) > 0


# no free lunch through the pools


CYCLES = [("SOL", "USDC", "USDT"), ("SOL", "USDT", "USDC"), ("BONK", "SOL", "USDC"), ("BONK", "USDC", "SOL")]
SMALL = {"SOL": 10**9, "BONK": 7_000_000 * 10**5}  # about $150 each


@settings(max_examples=40)
@given(slots)
def test_no_cycle_through_the_best_pools_returns_more_than_it_started_with(slot):
    for cycle in CYCLES:
        amount = SMALL[cycle[0]]
        for token_in, token_out in zip(cycle, cycle[1:] + cycle[:1]):
            amount = optimize(MARKET, token_in, token_out, amount, slot).best_direct.amount_out
        # three fees of at least 1 bp each are more than the pools' few bp of disagreement
        assert amount < SMALL[cycle[0]], (cycle, slot)


@settings(max_examples=15, deadline=None)
@given(slots)
def test_a_small_order_gains_at_most_a_few_basis_points_by_leaving_the_direct_pools(slot):
    for token_in, token_out, amount in (("SOL", "USDC", 10**9), ("USDC", "SOL", 150 * 10**6)):
        routing = optimize(MARKET, token_in, token_out, amount, slot)
        assert routing.best_direct is not None
        direct = routing.best_direct.amount_out
        assert (routing.best.amount_out - direct) * 10_000 <= 10 * direct  # the old market paid hundreds of bp


# pairs listed later


PUMP_USDC = new_launch("PUMP-USDC", listed_at_slot=5_000, price="0.002", depth="50000")


def test_a_launched_token_is_valued_from_its_launch_price_and_its_quote_token():
    market = Market(seed=42, launches=[PUMP_USDC])
    assert market.reference_price("PUMP-USDC", 5_000) == "0.002"
    usdc = Fraction(Decimal(market.usd_price("USDC", 5_000)))
    assert gap(Fraction("0.002") * usdc, Fraction(Decimal(market.usd_price("PUMP", 5_000)))) <= HUNDREDTH_BP


def test_a_pair_listed_off_the_cross_rate_starts_at_its_price_and_arbitrage_closes_the_gap():
    cross = rate(Market(seed=42, launches=[PUMP_USDC]), "PUMP", "USDC", 6_000) / rate(MARKET, "SOL", "USDC", 6_000)
    off = cross * Fraction(101, 100)  # listed 1 % rich
    text = str(Decimal(off.numerator) / Decimal(off.denominator))[:14]
    pump_sol = PoolLaunch(base="PUMP", quote="SOL", price=text, depth="300", listed_at_slot=6_000)
    market = Market(seed=42, launches=[PUMP_USDC, pump_sol])

    def gap_at(slot: int) -> Fraction:
        via = rate(market, "PUMP", "USDC", slot) * rate(market, "USDC", "SOL", slot)
        return gap(rate(market, "PUMP", "SOL", slot), via)

    assert Decimal(market.reference_price("PUMP-SOL", 6_000)) == Decimal(text).normalize()
    assert Fraction(95, 10_000) < gap_at(6_000) < Fraction(105, 10_000)
    halfway = gap_at(6_000 + ARBITRAGE_SLOTS // 2)
    assert Fraction(3, 1_000) < halfway < Fraction(7, 1_000)
    for slot in (6_000 + ARBITRAGE_SLOTS, 10_000, 123_456):
        assert gap_at(slot) <= Fraction(1, 100_000)  # half a tick of 0.1 bp, and rounding


def test_a_pair_listed_later_between_genesis_tokens_converges_to_their_cross_rate():
    wif_usdc = PairSpec(base="WIF", quote="USDC", price="2", listed_from_slot=1_000, cpmm=CpmmSpec(depth="100000"))
    market = Market(seed=7, config=MarketConfig(pairs=(*DEFAULT_CONFIG.pairs, wif_usdc)))
    assert market.reference_price("WIF-USDC", 1_000) == "2"  # WIF is worth $1.995 at genesis
    for slot in (1_000 + ARBITRAGE_SLOTS, 50_000):
        via = rate(market, "WIF", "SOL", slot) * rate(market, "SOL", "USDC", slot)
        assert gap(rate(market, "WIF", "USDC", slot), via) <= Fraction(1, 100_000)


def test_a_launch_that_links_two_new_tokens_to_the_market_keeps_every_cross_rate():
    pump_mew = new_launch("PUMP-MEW", listed_at_slot=100, price="1.5")
    mew_sol = new_launch("MEW-SOL", listed_at_slot=200, price="0.00002")
    market = Market(seed=3, launches=[pump_mew, mew_sol])
    assert market.reference_price("PUMP-MEW", 100) == "1.5" and market.reference_price("MEW-SOL", 200) == "0.00002"
    for slot in (200, 5_000, 77_777):
        sol = Fraction(Decimal(market.usd_price("SOL", slot)))
        mew = Fraction(Decimal(market.usd_price("MEW", slot)))
        pump = Fraction(Decimal(market.usd_price("PUMP", slot)))
        assert gap(rate(market, "MEW", "SOL", slot), mew / sol) <= HUNDREDTH_BP
        assert gap(rate(market, "PUMP", "MEW", slot), pump / mew) <= HUNDREDTH_BP


def test_a_launch_learnt_late_that_lists_a_token_first_reprices_the_same_way_in_any_order():
    pump_sol = new_launch("PUMP-SOL", listed_at_slot=4_000, price="0.0000135")
    first = Market(seed=42, launches=[PUMP_USDC])
    before = first.pools_at(5_500)
    first.add_launch(pump_sol)
    second = Market(seed=42, launches=[pump_sol, PUMP_USDC])
    after = first.pools_at(5_500)
    assert msgspec.json.encode(sorted(after.items())) == msgspec.json.encode(sorted(second.pools_at(5_500).items()))
    # PUMP is now valued from its SOL pair, listed first: the USDC pair converges to that
    assert after["raydium-cpmm:PUMP-USDC"] != before["raydium-cpmm:PUMP-USDC"]


# the config


def test_a_config_whose_genesis_prices_disagree_is_refused():
    pairs = tuple(
        msgspec.structs.replace(pair, price="150.05") if pair.pair_id == "SOL-USDT" else pair
        for pair in DEFAULT_CONFIG.pairs
    )
    refusal = "pair USDC-USDT is priced 1 but the other genesis pairs make it 1.000333"
    with pytest.raises(InconsistentPrices, match=refusal):
        Market(seed=0, config=MarketConfig(pairs=pairs))


def test_genesis_pairs_that_link_two_groups_of_tokens_may_name_any_price():
    pairs = (
        PairSpec(base="SOL", quote="USDC", price="150", cpmm=CpmmSpec(depth="1000")),
        PairSpec(base="JUP", quote="USDT", price="0.85", cpmm=CpmmSpec(depth="1000")),
        PairSpec(base="USDC", quote="USDT", price="1.001", cpmm=CpmmSpec(depth="1000")),
    )
    market = Market(seed=0, config=MarketConfig(pairs=pairs))
    assert [market.reference_price(pair.pair_id, 0) for pair in pairs] == ["150", "0.85", "1.001"]
    assert market.usd_price("USDT", 0) == "0.999000999" and market.usd_price("JUP", 0) == "0.8491508492"
