from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction
from math import isqrt

import base58
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.optimize import optimize
from shared.market.config import (
    DEFAULT_CONFIG,
    DEFAULT_TOKENS,
    CpmmSpec,
    DlmmSpec,
    MarketConfig,
    PairSpec,
    PricePath,
    Wave,
)
from shared.market.cpmm import CpmmPool
from shared.market.dlmm import DlmmPool
from shared.market.fixed_point import ONE, get_price_from_id
from shared.market.model import Market, UnknownPool, pool_id_for
from shared.market.noise import smooth_noise
from shared.market.pools import VENUE_CPMM, VENUE_DLMM
from shared.market.tokens import TOKENS, UnknownToken, get_token
from shared.market.view import MarketView

MARKET = Market(seed=42)
slots = st.integers(min_value=0, max_value=10**9)
MAX_TICKS = sum(w.amplitude for w in PricePath().waves) + PricePath().slot_jitter
VOLATILITY = {token.symbol: token.volatility_pct for token in DEFAULT_TOKENS}


def encoded(pools):
    return msgspec.json.encode(sorted(pools.items()))


# tokens


@pytest.mark.parametrize("token", TOKENS.values(), ids=lambda t: t.symbol)
def test_every_mint_is_a_32_byte_base58_address(token):
    assert len(base58.b58decode(token.mint)) == 32


def test_only_sol_is_native():
    assert [t.symbol for t in TOKENS.values() if t.native] == ["SOL"]


@pytest.mark.parametrize(("symbol", "decimals"), [("SOL", 9), ("USDC", 6), ("USDT", 6), ("BONK", 5), ("JUP", 6)])
def test_tokens_carry_their_real_decimals(symbol, decimals):
    assert get_token(symbol).decimals == decimals


def test_token_lookup_ignores_case_and_accepts_a_mint():
    assert get_token("usdc") is get_token("USDC") is get_token("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")


def test_an_unknown_token_raises_a_key_error_naming_the_known_ones():
    with pytest.raises(UnknownToken) as caught:
        get_token("DOGE")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("unknown token 'DOGE'; known tokens: SOL, USDC")


# determinism


@settings(max_examples=20)
@given(slots)
def test_the_same_seed_and_slot_give_identical_pools(slot):
    assert encoded(Market(seed=42).pools_at(slot)) == encoded(MARKET.pools_at(slot))


def test_pools_do_not_depend_on_which_slots_were_asked_before():
    fresh = Market(seed=42)
    fresh.pools_at(10_000)
    fresh.pools_at(3)
    assert encoded(fresh.pools_at(7_777)) == encoded(Market(seed=42).pools_at(7_777))


def test_different_seeds_give_different_markets():
    assert encoded(Market(seed=1).pools_at(500)) != encoded(Market(seed=2).pools_at(500))


def test_every_listed_pair_has_its_pools():
    pools = MARKET.pools_at(0)
    expected = {
        pool_id_for(venue, pair.pair_id)
        for pair in DEFAULT_CONFIG.pairs
        for venue, spec in ((VENUE_CPMM, pair.cpmm), (VENUE_DLMM, pair.dlmm))
        if spec
    }
    assert set(pools) == expected
    assert {"raydium-cpmm:SOL-USDC", "meteora-dlmm:SOL-USDC", "raydium-cpmm:JUP-USDC"} <= expected
    assert "meteora-dlmm:WIF-SOL" in expected and "raydium-cpmm:WIF-SOL" not in expected
    assert len(MARKET.pairs()) == len(DEFAULT_CONFIG.pairs) >= 7


# the moving price


def test_smooth_noise_stays_within_its_amplitude_and_moves_gently():
    values = [smooth_noise(slot, 400, 1_000, "seed") for slot in range(5_000)]
    assert max(values) <= 1_000 and min(values) >= -1_000
    assert max(values) - min(values) > 500
    assert max(abs(b - a) for a, b in zip(values, values[1:], strict=False)) <= 1.5 * 2_000 / 400 + 1


@given(slots)
def test_the_reference_price_stays_within_its_tokens_path_bounds(slot):
    for pair in DEFAULT_CONFIG.pairs:
        # each token's path lies within MAX_TICKS of its centre, so within twice that of its genesis value
        bound = 2 * MAX_TICKS * (VOLATILITY[pair.base] + VOLATILITY[pair.quote]) // 100
        assert abs(MARKET.reference_ticks(pair.pair_id, slot)) <= bound


@given(st.integers(min_value=0, max_value=10**8))
def test_one_slot_moves_the_price_by_a_few_basis_points_at_most(slot):
    before = MARKET.reference_ticks("SOL-USDC", slot)
    after = MARKET.reference_ticks("SOL-USDC", slot + 1)
    assert abs(after - before) <= 100  # 10 bp


def test_the_price_moves_tenths_of_a_percent_in_seconds_and_percents_in_an_hour():
    def median_move(window):
        moves = sorted(
            abs(MARKET.reference_ticks("SOL-USDC", s + window) - MARKET.reference_ticks("SOL-USDC", s))
            for s in range(0, 400_000, 2_003)
        )
        return moves[len(moves) // 2]

    # ticks are tenths of a basis point; a slot is 400 ms
    assert 50 <= median_move(100) <= 1_000  # 40 s: 0.05-1 %
    assert 500 <= median_move(9_000) <= 6_000  # 1 h: 0.5-6 %


@pytest.mark.parametrize("pair", DEFAULT_CONFIG.pairs, ids=lambda pair: pair.pair_id)
def test_the_reference_price_starts_exactly_at_the_configured_price(pair):
    units = Fraction(pair.price) * 10 ** get_token(pair.quote).decimals / 10 ** get_token(pair.base).decimals
    assert MARKET.reference_ticks(pair.pair_id, 0) == 0
    assert MARKET.reference_price_q64(pair.pair_id, 0) == units.numerator * ONE // units.denominator
    assert Decimal(MARKET.reference_price(pair.pair_id, 0)) == Decimal(pair.price)


# pools follow the price


@settings(max_examples=25)
@given(slots)
def test_a_cpmm_pool_keeps_its_liquidity_while_its_price_moves(slot):
    first, later = MARKET.pool("raydium-cpmm:SOL-USDC", 0), MARKET.pool("raydium-cpmm:SOL-USDC", slot)
    assert isinstance(first, CpmmPool) and isinstance(later, CpmmPool)
    liquidity, moved = isqrt(first.reserve_a * first.reserve_b), isqrt(later.reserve_a * later.reserve_b)
    assert abs(liquidity - moved) <= liquidity // 10**6


@settings(max_examples=25)
@given(slots)
def test_both_venues_price_a_pair_close_to_its_reference(slot):
    reference = MARKET.reference_price_q64("SOL-USDC", slot)
    cpmm = MARKET.pool("raydium-cpmm:SOL-USDC", slot)
    dlmm = MARKET.pool("meteora-dlmm:SOL-USDC", slot)
    assert isinstance(cpmm, CpmmPool) and isinstance(dlmm, DlmmPool)
    cpmm_price = cpmm.reserve_b * ONE // cpmm.reserve_a
    offset = PricePath().venue_offset.amplitude  # ticks of 0.1 bp
    assert abs(cpmm_price - reference) * 100_000 <= reference * (offset + 5)
    # the active bin is the one nearest the pool's price: at most half a bin step away
    assert abs(dlmm.spot_price_q64 - reference) * 100_000 <= reference * (offset + 5 * dlmm.bin_step + 5)


@settings(max_examples=15)
@given(slots)
def test_a_dlmm_pool_holds_y_below_x_above_and_both_in_the_active_bin(slot):
    pool = MARKET.pool("meteora-dlmm:SOL-USDC", slot)
    assert isinstance(pool, DlmmPool)
    assert len(pool.bins) == 141
    assert pool.bins[0].bin_id == pool.active_id - 70 and pool.bins[-1].bin_id == pool.active_id + 70
    assert all(b.reserve_y > 0 for b in pool.bins if b.bin_id < pool.active_id)
    assert all(b.reserve_x > 0 for b in pool.bins if b.bin_id > pool.active_id)
    assert pool.index_reference == pool.active_id
    assert get_price_from_id(pool.active_id, pool.bin_step) == pool.spot_price_q64


def test_the_volatility_reference_rises_only_when_the_price_moved_recently():
    window = PricePath().volatility_window
    seen = Counter()
    for slot in range(window, 60_000, 211):
        now = MARKET.pool("meteora-dlmm:SOL-USDC", slot)
        before = MARKET.pool("meteora-dlmm:SOL-USDC", slot - window)
        assert isinstance(now, DlmmPool) and isinstance(before, DlmmPool)
        moved = abs(now.active_id - before.active_id)
        if moved == 0:
            assert now.volatility_reference == 0
        if moved >= 2:
            assert now.volatility_reference > 0
        seen[now.volatility_reference > 0] += 1
    assert seen[True] and seen[False]


@pytest.mark.parametrize(
    ("token_in", "token_out", "amount_in"),
    [("SOL", "USDC", 10**9), ("USDC", "SOL", 150 * 10**6), ("SOL", "USDT", 10**9), ("BONK", "SOL", 10**10)],
)
def test_each_venue_of_a_two_venue_pair_wins_some_of_the_time(token_in, token_out, amount_in):
    winners = Counter(
        optimize(MARKET, token_in, token_out, amount_in, slot).best_direct.description
        for slot in range(0, 30_000, 151)
    )
    assert winners[VENUE_CPMM] >= 10 and winners[VENUE_DLMM] >= 10


# lookups


def test_pools_for_finds_a_pair_in_either_direction():
    forward = MARKET.pools_for("SOL", "USDC", 5)
    backward = MARKET.pools_for("usdc", "sol", 5)
    assert forward == backward
    assert {p.pool_id for p in forward} == {"raydium-cpmm:SOL-USDC", "meteora-dlmm:SOL-USDC"}
    assert [p.pool_id for p in MARKET.pools_for("JUP", "USDC", 5)] == ["raydium-cpmm:JUP-USDC"]
    assert MARKET.pools_for("JUP", "BONK", 5) == ()


def test_pools_for_refuses_an_unknown_token():
    with pytest.raises(UnknownToken):
        MARKET.pools_for("SOL", "DOGE", 5)


def test_one_pool_at_a_slot_is_the_same_as_in_the_full_snapshot():
    assert MARKET.pool("meteora-dlmm:BONK-SOL", 99) == MARKET.pools_at(99)["meteora-dlmm:BONK-SOL"]


@pytest.mark.parametrize("pool_id", ["raydium-cpmm:WIF-SOL", "orca:SOL-USDC", "meteora-dlmm:SOL-DOGE", "nonsense"])
def test_an_unknown_pool_raises(pool_id):
    with pytest.raises(UnknownPool, match="unknown"):
        MARKET.pool(pool_id, 0)


@pytest.mark.parametrize("slot", [-1, 1.5, True])
def test_a_slot_must_be_a_non_negative_int(slot):
    with pytest.raises(ValueError, match="slot"):
        MARKET.pools_at(slot)


def launch_config(launch_slot):
    return MarketConfig(
        pairs=(
            PairSpec(base="WIF", quote="USDC", price="2", listed_from_slot=launch_slot,
                     cpmm=CpmmSpec(depth="100000", fee_ppm=10_000)),
        ),
        path=PricePath(waves=(Wave(spacing=100, amplitude=100),)),
    )


def test_a_launched_pair_has_no_pools_before_its_launch_slot():
    market = Market(seed=3, config=launch_config(1_000))
    assert market.pools_at(999) == {} and market.pools_for("WIF", "USDC", 999) == ()
    with pytest.raises(UnknownPool, match="not listed until slot 1000"):
        market.pool("raydium-cpmm:WIF-USDC", 999)
    assert set(market.pools_at(1_000)) == {"raydium-cpmm:WIF-USDC"}
    assert market.pool("raydium-cpmm:WIF-USDC", 1_000).fee_ppm == 10_000


@pytest.mark.parametrize(
    "pairs",
    [
        (PairSpec(base="SOL", quote="DOGE", price="1", cpmm=CpmmSpec(depth="1")),),
        (PairSpec(base="SOL", quote="SOL", price="1", cpmm=CpmmSpec(depth="1")),),
        (PairSpec(base="sol", quote="USDC", price="1", cpmm=CpmmSpec(depth="1")),),
        (PairSpec(base="SOL", quote="USDC", price="0", cpmm=CpmmSpec(depth="1")),),
        (PairSpec(base="SOL", quote="USDC", price="1"),) * 2,
    ],
)
def test_a_malformed_market_config_is_refused(pairs):
    with pytest.raises((ValueError, KeyError)):
        Market(seed=0, config=MarketConfig(pairs=pairs))


def test_a_dlmm_pair_with_a_low_price_makes_the_bin_nearest_its_price_active():
    market = Market(seed=5, config=MarketConfig(
        pairs=(PairSpec(base="BONK", quote="SOL", price="0.000000135",
                        dlmm=DlmmSpec(bin_step=25, base_factor=10_000, variable_fee_control=0,
                                      max_volatility_accumulator=0, bin_depth="10")),),
        path=PricePath(waves=(), slot_jitter=0, venue_offset=Wave(spacing=1, amplitude=0)),
    ))
    pool = market.pool("meteora-dlmm:BONK-SOL", 123)
    target = 135 * 10**9 * ONE // (10**9 * 10**5)  # lamports per BONK base unit, Q64.64
    distance = {bin_id: abs(get_price_from_id(bin_id, 25) - target) for bin_id in range(pool.active_id - 1,
                                                                                       pool.active_id + 2)}
    assert min(distance, key=distance.get) == pool.active_id
    active = next(b for b in pool.bins if b.bin_id == pool.active_id)
    assert active.reserve_x > 0 and active.reserve_y > 0  # buyers and sellers both find some in it


def test_the_reference_price_reads_in_token_units():
    assert MARKET.reference_price("SOL-USDC", 0) == "150"
    assert 120 < Decimal(MARKET.reference_price("SOL-USDC", 12_345)) < 180
    with pytest.raises(UnknownPool, match="unknown pair"):
        MARKET.reference_price_q64("SOL-DOGE", 0)


def test_the_simulated_market_serves_as_a_market_view():
    assert isinstance(MARKET, MarketView)
    view: MarketView = MARKET
    assert view.quotes("SOL", "USDC", 10**9, 0) == MARKET.quotes("SOL", "USDC", 10**9, 0)
