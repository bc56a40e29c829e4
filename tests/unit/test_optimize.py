"""The route optimiser: curves, the split search and the candidates it proposes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.executor.settle import settler
from services.router import split
from services.router.curves import curve_for
from services.router.optimize import SPLIT_CAPACITY_PCT, NoRoute, optimize
from shared.chain.transaction import SwapIntent, SwapLeg, SwapPath
from shared.market.config import DEFAULT_CONFIG, MarketConfig, PairSpec
from shared.market.cpmm import swap_out
from shared.market.model import Market
from shared.market.pools import pool_tokens
from shared.market.tokens import get_token

MARKET = Market(7)
SETTLE = settler(MARKET)
PAIRS = [
    ("SOL", "USDC"), ("USDC", "SOL"), ("SOL", "USDT"), ("BONK", "USDC"), ("USDC", "BONK"), ("JUP", "SOL"),
    ("SOL", "JUP"), ("WIF", "USDC"), ("BONK", "USDT"), ("RAY", "USDC"), ("USDT", "WIF"), ("USDC", "USDT"),
]
# Roughly one dollar of each token, so sizes can be drawn in dollars.
DOLLAR = {"SOL": 10**9 // 150, "USDC": 10**6, "USDT": 10**6, "BONK": 5 * 10**9, "JUP": 1_176_470,
          "RAY": 45_454_545, "WIF": 75_187_969}


def sol(amount: int) -> int:
    return amount * 10**9


def settled_out(candidate, token_in: str, token_out: str, amount_in: int, slot: int):
    swap = SwapIntent(
        pool_id="route", token_in=token_in, token_out=token_out, amount_in=amount_in, min_amount_out=0,
        paths=tuple(
            SwapPath(amount_in=p.amount_in,
                     legs=tuple(SwapLeg(pool_id=leg.pool_id, token_in=leg.token_in, token_out=leg.token_out)
                                for leg in p.legs))
            for p in candidate.paths
        ),
    )
    return SETTLE(swap, slot)


# --- curves ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(slot=st.integers(0, 50_000), pick=st.integers(0, 1_000), digits=st.integers(0, 16), mantissa=st.integers(1, 9))
def test_a_curve_gives_exactly_what_the_pool_math_gives(slot, pick, digits, mantissa):
    pools = list(MARKET.pools_at(slot).values())
    pool = pools[pick % len(pools)]
    token_in = pool_tokens(pool)[pick % 2]
    amount = mantissa * 10**digits
    result = pool.swap(token_in, amount)
    assert curve_for(pool, token_in).out(amount) == (result.amount_out if result.filled else None)


def test_a_pool_s_curve_is_built_once_and_another_snapshot_of_it_gets_its_own():
    pool = MARKET.pool("meteora-dlmm:SOL-USDC", 1_234)
    curve = curve_for(pool, "SOL")
    assert curve_for(pool, "SOL") is curve
    moved = MARKET.pool("meteora-dlmm:SOL-USDC", 1_235)
    assert curve_for(moved, "SOL") is not curve
    amount = 10**12
    assert curve_for(moved, "SOL").out(amount) == moved.swap("SOL", amount).amount_out


def test_a_bin_pool_curve_takes_exactly_its_capacity_and_not_one_unit_more():
    pool = MARKET.pool("meteora-dlmm:WIF-SOL", 4_000)
    curve = curve_for(pool, "WIF")
    assert curve.capacity is not None
    whole = pool.swap("WIF", curve.capacity)
    assert whole.filled and curve.out(curve.capacity) == whole.amount_out
    assert not pool.swap("WIF", curve.capacity + 1).filled and curve.out(curve.capacity + 1) is None


# --- the split search -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    reserves=st.tuples(*[st.integers(1_000, 10**6)] * 4),
    fees=st.tuples(st.integers(0, 30_000), st.integers(0, 30_000)),
    amount=st.integers(1, 3_000),
)
def test_the_split_search_finds_the_best_share_a_brute_force_finds(reserves, fees, amount):
    a_in, a_out, b_in, b_out = reserves

    def first(x):
        return swap_out(x, a_in, a_out, fees[0]).amount_out

    def second(x):
        return swap_out(x, b_in, b_out, fees[1]).amount_out

    share = split.best_split(first, second, amount, None, None)
    best = max(first(x) + second(amount - x) for x in range(amount + 1))
    # The fee is rounded up to whole input units, so at these tiny amounts each route's
    # output is a sawtooth, not concave: the search can settle one fee step away from the
    # peak. A step is one unit of input on each route, worth at most its spot price in
    # output (a few units here; nothing measurable at real sizes of millions of units).
    step = -(-a_out // a_in) + -(-b_out // b_in)
    assert best - step - 2 <= first(share) + second(amount - share) <= best


def test_the_split_search_keeps_each_route_within_what_it_can_take():
    def first(x):
        return x * 3 if x <= 400 else None

    def second(x):
        return x

    assert split.best_split(first, second, 1_000, 400, None) == 400
    with pytest.raises(ValueError):
        split.best_split(first, second, 1_000, 400, 500)


def test_the_split_search_is_bounded_however_large_the_order():
    calls = []

    def first(x):
        calls.append(x)
        return swap_out(x, 10**15, 10**14, 2_500).amount_out

    def second(x):
        return swap_out(x, 10**15, 10**14, 3_000).amount_out

    split.best_split(first, second, 10**18, None, None)
    # One new point per golden-section step (about 25 to reach n / 2**16), plus the ends.
    assert len(calls) <= 32


# --- candidates and the best route ----------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(PAIRS), digits=st.integers(0, 7), mantissa=st.integers(1, 9), slot=st.integers(0, 200_000))
def test_the_best_route_never_pays_less_than_the_best_single_venue_and_every_candidate_settles_to_its_quote(
    pair, digits, mantissa, slot
):
    token_in, token_out = pair
    amount = mantissa * 10**digits * DOLLAR[token_in]  # from a dollar to $90M
    try:
        routing = optimize(MARKET, token_in, token_out, amount, slot)
    except NoRoute as exc:
        assert exc.reason
        return
    event(f"best route: {routing.best.kind}")
    assert routing.best == routing.candidates[0] and routing.best.fillable
    if routing.best_direct is not None:
        assert routing.best.amount_out >= routing.best_direct.amount_out
    fillable = [c for c in routing.candidates if c.fillable]
    assert routing.best.amount_out == max(c.amount_out for c in fillable)
    for candidate in fillable:
        assert sum(p.amount_in for p in candidate.paths) == amount
        assert sum(p.amount_out for p in candidate.paths) == candidate.amount_out
        pools = [leg.pool_id for p in candidate.paths for leg in p.legs]
        assert len(pools) == len(set(pools)), "no pool is swapped through twice"
        for path in candidate.paths:
            assert path.legs[0].amount_in == path.amount_in and path.legs[-1].amount_out == path.amount_out
            assert path.legs[0].token_in == token_in and path.legs[-1].token_out == token_out
            for before, after in zip(path.legs, path.legs[1:]):
                assert after.amount_in == before.amount_out and after.token_in == before.token_out
        outcome = settled_out(candidate, token_in, token_out, amount, slot)
        assert outcome.ok and outcome.amount_out == candidate.amount_out


def test_a_pair_without_a_pool_is_routed_through_a_hub_token():
    for token_in, token_out, middle in (("JUP", "SOL", "USDC"), ("BONK", "USDT", None), ("WIF", "USDC", "SOL")):
        routing = optimize(MARKET, token_in, token_out, 1_000 * DOLLAR[token_in], 5_000)
        assert routing.best_direct is None and routing.quotes == ()
        assert routing.best.kind == "multihop" and len(routing.best.paths[0].legs) == 2
        if middle is not None:
            assert routing.best.paths[0].legs[0].token_out == middle
            assert routing.best.description.startswith(f"{token_in}->{middle}->{token_out} via ")


def test_a_very_large_order_is_split_across_both_venues_for_more_than_either_gives():
    amount = sol(50_000)
    routing = optimize(MARKET, "SOL", "USDC", amount, 2_000)
    split_route = routing.best
    assert split_route.kind == "split"
    assert {leg.venue for p in split_route.paths for leg in p.legs} >= {"raydium-cpmm", "meteora-dlmm"}
    alone = [q.amount_out for q in routing.quotes if q.fillable]
    assert split_route.amount_out > max(alone)
    assert "%" in split_route.description and " + " in split_route.description


def test_a_small_order_on_deep_pools_stays_on_one_venue():
    routing = optimize(MARKET, "SOL", "USDC", sol(1), 3_000)
    assert routing.best.kind == "direct"
    assert routing.best == routing.best_direct
    assert routing.best.paths[0].legs[0].pool_id == routing.quotes[0].pool_id


def test_every_direct_pool_is_a_candidate_even_one_that_cannot_fill():
    routing = optimize(MARKET, "SOL", "USDC", sol(100_000), 500)
    directs = [c for c in routing.candidates if c.kind == "direct"]
    assert {c.description for c in directs} == {"raydium-cpmm", "meteora-dlmm"}
    unfillable = [c for c in directs if not c.fillable]
    assert unfillable and all(c.paths == () for c in unfillable)
    assert routing.candidates[-1] in unfillable


def test_the_optimiser_is_deterministic():
    first = optimize(MARKET, "USDC", "SOL", 2_000_000 * 10**6, 7_777)
    again = optimize(Market(7), "USDC", "SOL", 2_000_000 * 10**6, 7_777)
    assert first == again


def test_a_pair_with_no_pool_and_no_hub_path_has_no_route_and_says_so():
    with pytest.raises(NoRoute) as caught:
        optimize(MARKET, "RAY", "JUP", 10**6, 100)
    assert caught.value.reason == "no pool for RAY/JUP and no two-hop path through SOL, USDC, USDT"


def test_an_order_no_route_can_take_whole_lists_why_for_each_route():
    with pytest.raises(NoRoute) as caught:
        optimize(MARKET, "WIF", "SOL", 10**9 * 10**6, 100)
    reason = caught.value.reason
    assert reason.startswith("no route can fill 1000000000 WIF -> SOL: meteora-dlmm:WIF-SOL: insufficient liquidity")
    assert "WIF->USDC->SOL" not in reason  # WIF has no USDC pool, so that path was never a candidate


def test_a_pool_that_is_not_listed_yet_is_not_routed_through():
    launch = PairSpec(base="WIF", quote="USDC", price="2", listed_from_slot=1_000,
                      cpmm=DEFAULT_CONFIG.pairs[0].cpmm)
    market = Market(7, MarketConfig(pairs=(*DEFAULT_CONFIG.pairs, launch)))
    before = optimize(market, "WIF", "USDC", 10**6, 999)
    after = optimize(market, "WIF", "USDC", 10**6, 1_000)
    assert before.best.kind == "multihop" and before.quotes == ()
    assert [q.pool_id for q in after.quotes] == ["raydium-cpmm:WIF-USDC"]


def test_the_price_impact_of_a_direct_route_is_its_quote_s():
    routing = optimize(MARKET, "SOL", "USDC", sol(10), 1_234)
    assert routing.best.kind == "direct"
    assert routing.price_impact_bps == routing.quotes[0].price_impact_bps


def test_the_price_impact_grows_with_size():
    impacts = [optimize(MARKET, "BONK", "USDC", n * DOLLAR["BONK"], 9_000).price_impact_bps
               for n in (10, 10_000, 1_000_000)]
    assert impacts == sorted(impacts) and impacts[-1] > impacts[0]


def test_amounts_are_in_the_tokens_base_units():
    routing = optimize(MARKET, "JUP", "SOL", 10 * 10 ** get_token("JUP").decimals, 10)
    first, second = routing.best.paths[0].legs
    assert (first.token_in, first.token_out, second.token_out) == ("JUP", "USDC", "SOL")
    assert first.fee > 0 and second.fee > 0


def test_a_two_hop_path_too_thin_for_the_whole_order_is_listed_unfillable_yet_can_carry_part_of_a_split():
    routing = optimize(MARKET, "SOL", "BONK", sol(50_000), 2_000)
    hop = next(c for c in routing.candidates if c.kind == "multihop")
    assert (hop.description, hop.amount_out, hop.fillable, hop.paths) == (
        "SOL->USDC->BONK via raydium-cpmm, meteora-dlmm", 0, False, ())
    best = routing.best
    assert best.kind == "split" and any(len(p.legs) == 2 for p in best.paths)
    assert best.amount_out > routing.best_direct.amount_out


def test_a_split_leaves_a_shallow_pool_room_to_move_before_the_swap_lands():
    amount = sol(50_000)
    routing = optimize(MARKET, "SOL", "USDC", amount, 2_000)
    assert routing.best.kind == "split"
    dlmm = next(p for p in routing.best.paths if p.legs[0].venue == "meteora-dlmm")
    capacity = curve_for(MARKET.pool("meteora-dlmm:SOL-USDC", 2_000), "SOL").capacity
    assert capacity < amount  # the bins alone cannot take the order
    assert dlmm.amount_in <= capacity * SPLIT_CAPACITY_PCT // 100
