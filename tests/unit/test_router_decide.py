from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.decide import NoRoute, decide
from services.router.optimize import optimize
from shared import events as ev
from shared.market.cpmm import CpmmPool
from shared.market.dlmm import Bin, DlmmPool
from shared.market.model import Market
from shared.market.pools import Pool, pool_tokens
from shared.market.quotes import Quote, execute_on_pool, quote_pool
from shared.market.tokens import get_token
from tests.kit import SPEC

MARKET = Market(7)

# 1:1 stable pools with 6 decimals on both sides keep the arithmetic readable.
FEE_CPMM = CpmmPool(pool_id="cpmm", token_a="USDC", token_b="USDT",
                    reserve_a=1_000_000_000, reserve_b=1_000_000_000, fee_ppm=2_500)
STABLE_CPMM = CpmmPool(pool_id="stable", token_a="USDC", token_b="USDT",
                       reserve_a=1_000_000_000, reserve_b=1_000_000_000, fee_ppm=0)
TINY_CPMM = CpmmPool(pool_id="tiny", token_a="USDC", token_b="USDT", reserve_a=4_000_000, reserve_b=4_000_000, fee_ppm=0)
THIN_DLMM = DlmmPool(  # takes about 3 USDC at most
    pool_id="dlmm", token_x="USDC", token_y="USDT", bin_step=1, active_id=0,
    bins=(Bin(bin_id=-1, reserve_y=2_000_000), Bin(bin_id=0, reserve_x=1_000_000, reserve_y=1_000_000)),
    base_factor=10_000, variable_fee_control=0, max_volatility_accumulator=0,
    volatility_reference=0, index_reference=0,
)


class FixedPools:
    """A market view whose pools are the same at every slot."""

    def __init__(self, *pools: Pool) -> None:
        self._pools = pools

    def pools_for(self, token_in: str, token_out: str, slot: int) -> tuple[Pool, ...]:
        wanted = {get_token(token_in).symbol, get_token(token_out).symbol}
        return tuple(pool for pool in self._pools if set(pool_tokens(pool)) == wanted)

    def pool(self, pool_id: str, slot: int) -> Pool:
        return next(pool for pool in self._pools if pool.pool_id == pool_id)

    def quotes(self, token_in: str, token_out: str, amount_in: int, slot: int) -> tuple[Quote, ...]:
        return tuple(quote_pool(pool, token_in, amount_in) for pool in self.pools_for(token_in, token_out, slot))


def usdc(amount_in: int) -> ev.OrderSpec:
    return order("USDC", "USDT", amount_in)


def order(token_in="SOL", token_out="USDC", amount_in=SPEC.amount_in, **fields) -> ev.OrderSpec:
    return msgspec.structs.replace(SPEC, token_in=token_in, token_out=token_out, amount_in=amount_in, **fields)


def test_the_route_is_the_best_candidate_and_records_every_direct_quote():
    for slot in range(1000, 1400, 40):
        route = decide(SPEC, MARKET, slot)
        quotes = MARKET.quotes("SOL", "USDC", SPEC.amount_in, slot)
        assert route.expected_out == route.candidates[0].amount_out >= max(q.amount_out for q in quotes if q.fillable)
        assert {q.venue for q in route.quotes} == {"raydium-cpmm", "meteora-dlmm"}
        assert route.min_out == route.expected_out * (10_000 - SPEC.slippage_bps) // 10_000
        assert route.slot == slot and route.amount_in == SPEC.amount_in


def test_a_direct_route_names_its_pool_and_carries_its_quote_s_fee_and_impact():
    route = decide(SPEC, MARKET, 3_000)
    assert route.kind == "direct" and route.gain_bps == 0
    (path,) = route.paths
    (leg,) = path.legs
    quote = next(q for q in route.quotes if q.pool_id == route.pool_id)
    assert (route.venue, route.pool_id) == (leg.venue, leg.pool_id)
    assert route.expected_out == quote.amount_out
    assert (route.fee, route.price_impact_bps) == (quote.fee, quote.price_impact_bps)


def test_each_venue_wins_some_of_the_time():
    winners = {decide(SPEC, MARKET, s).venue for s in range(0, 4000, 50)}
    assert {"raydium-cpmm", "meteora-dlmm"} <= winners


def test_a_split_route_describes_its_pools_and_reports_its_gain_over_the_best_single_venue():
    spec = order(amount_in=50_000 * 10**9)
    route = decide(spec, MARKET, 2_000)
    assert route.kind == "split" and route.venue == "split"
    assert route.pool_id == "+".join(p.legs[0].pool_id for p in route.paths)
    assert set(route.pool_id.split("+")) == {"raydium-cpmm:SOL-USDC", "meteora-dlmm:SOL-USDC"}
    best_direct = max(q.amount_out for q in route.quotes if q.fillable)
    assert route.gain_bps == (route.expected_out - best_direct) * 10_000 // best_direct > 0
    assert route.fee == sum(p.legs[0].fee for p in route.paths)
    assert sum(p.amount_in for p in route.paths) == spec.amount_in


def test_an_order_too_large_for_one_venue_still_gets_at_least_what_the_venue_that_can_fill_it_gives():
    huge = order(amount_in=100_000 * 10**9)
    route = decide(huge, MARKET, 500)
    raydium = next(q for q in route.quotes if q.venue == "raydium-cpmm")
    assert any(not q.fillable for q in route.quotes)
    assert route.expected_out > raydium.amount_out


def test_a_pair_without_a_direct_pool_is_routed_in_two_hops():
    spec = order("JUP", "SOL", 1_000 * 10**6)
    route = decide(spec, MARKET, 800)
    assert route.kind == "multihop" and route.venue == "multihop" and route.quotes == ()
    (path,) = route.paths
    assert route.pool_id == ">".join(leg.pool_id for leg in path.legs)
    assert path.legs[0].pool_id == "raydium-cpmm:JUP-USDC"  # JUP's only pool
    assert path.legs[1].pool_id in {"raydium-cpmm:SOL-USDC", "meteora-dlmm:SOL-USDC"}
    assert route.fee == path.legs[0].fee and route.gain_bps == 0
    assert route.expected_out == path.amount_out == path.legs[-1].amount_out


def test_the_route_price_impact_compares_its_output_with_spot_prices():
    small = decide(order("BONK", "USDC", 50_000 * 10**5), MARKET, 9_000)
    large = decide(order("BONK", "USDC", 50_000_000_000 * 10**5), MARKET, 9_000)
    assert 0 <= small.price_impact_bps < large.price_impact_bps <= 10_000


def test_a_limit_order_s_own_floor_raises_the_minimum_output():
    loose = decide(order(min_out=1), MARKET, 1_000)
    assert loose.min_out == loose.expected_out * (10_000 - SPEC.slippage_bps) // 10_000
    strict = decide(order(min_out=loose.expected_out - 1), MARKET, 1_000)
    assert strict.min_out == loose.expected_out - 1


def test_every_candidate_considered_is_recorded_best_first():
    route = decide(order(amount_in=20_000 * 10**9), MARKET, 6_000)
    kinds = {c.kind for c in route.candidates}
    assert {"direct", "multihop"} <= kinds
    fillable = [c.amount_out for c in route.candidates if c.fillable]
    assert fillable == sorted(fillable, reverse=True) and route.candidates[0].paths == route.paths


def test_the_route_is_the_optimiser_s_best():
    spec = order("USDC", "SOL", 3_000_000 * 10**6)
    routing = optimize(MARKET, "USDC", "SOL", spec.amount_in, 4_321)
    route = decide(spec, MARKET, 4_321)
    assert route.paths == routing.best.paths and route.candidates == routing.candidates


def test_a_pair_with_no_pool_has_no_route():
    with pytest.raises(NoRoute) as caught:
        decide(order("RAY", "JUP", 10**6), MARKET, 1)
    assert "no pool for RAY/JUP" in caught.value.reason


# --- on pools fixed by hand --------------------------------------------------------------------


def test_the_venue_with_more_output_after_fees_wins():
    # 0.5 USDC: the DLMM's active bin fills it at 1 less its 0.01 % fee; the CPMM charges 0.25 %.
    route = decide(usdc(500_000), FixedPools(FEE_CPMM, THIN_DLMM), 1)
    assert (route.kind, route.venue, route.pool_id, route.expected_out) == ("direct", "meteora-dlmm", "dlmm", 499_950)
    assert [(c.description, c.amount_out) for c in route.candidates] == [("meteora-dlmm", 499_950),
                                                                           ("raydium-cpmm", 498_501)]
    assert [q.pool_id for q in route.quotes] == ["dlmm", "cpmm"]


def test_a_venue_that_cannot_take_the_whole_order_is_never_routed_to_alone_however_much_it_would_give():
    route = decide(usdc(10_000_000), FixedPools(TINY_CPMM, THIN_DLMM), 1)
    by_pool = {q.pool_id: q for q in route.quotes}
    assert not by_pool["dlmm"].fillable and by_pool["dlmm"].amount_out > by_pool["tiny"].amount_out
    assert [q.pool_id for q in route.quotes] == ["tiny", "dlmm"]  # fillable first
    assert route.candidates[-1] == ev.Candidate(kind="direct", description="meteora-dlmm", amount_out=3_000_000,
                                                fillable=False)
    # It still carries the part of a split it can take.
    assert route.kind == "split" and route.expected_out > by_pool["tiny"].amount_out
    assert route.gain_bps == (route.expected_out - by_pool["tiny"].amount_out) * 10_000 // by_pool["tiny"].amount_out


def test_a_split_settles_exactly_as_routed_and_gains_over_the_best_single_venue():
    pools = FixedPools(STABLE_CPMM, THIN_DLMM)
    route = decide(usdc(10_000_000), pools, 1)
    assert route.kind == "split" and sum(p.amount_in for p in route.paths) == 10_000_000
    best_direct = 9_900_990  # floor(1e7 * 1e9 / (1e9 + 1e7)) from the CPMM alone
    assert route.gain_bps == (route.expected_out - best_direct) * 10_000 // best_direct > 0
    settled = [execute_on_pool(pools.pool(p.legs[0].pool_id, 1), "USDC", p.amount_in, 0) for p in route.paths]
    assert all(r.ok for r in settled) and sum(r.amount_out for r in settled) == route.expected_out


def test_nothing_can_fill_says_why_for_every_pool():
    with pytest.raises(NoRoute) as caught:
        decide(usdc(10_000_000), FixedPools(THIN_DLMM), 1)
    assert caught.value.reason == (
        "no route can fill 10 USDC -> USDT: dlmm: insufficient liquidity: pool can take only 3.000503 of 10 USDC"
    )


def test_no_pool_and_no_two_hop_path_has_no_route():
    with pytest.raises(NoRoute) as caught:
        decide(usdc(500_000), FixedPools(), 1)
    assert caught.value.reason == "no pool for USDC/USDT and no two-hop path through SOL"


@given(st.permutations([FEE_CPMM, STABLE_CPMM, TINY_CPMM, THIN_DLMM]), st.sampled_from([500_000, 10_000_000]))
def test_the_route_does_not_depend_on_the_order_the_pools_are_listed_in(pools, amount):
    listed = FixedPools(FEE_CPMM, STABLE_CPMM, TINY_CPMM, THIN_DLMM)
    assert decide(usdc(amount), FixedPools(*pools), 1) == decide(usdc(amount), listed, 1)


def test_a_routed_order_settles_at_its_expected_output_while_the_market_has_not_moved():
    market = Market(seed=11)
    spec = order(amount_in=2 * 10**9)
    route = decide(spec, market, 4_321)
    assert route.kind == "direct"
    landed = execute_on_pool(market.pool(route.pool_id, 4_321), "SOL", spec.amount_in, route.min_out)
    assert landed.ok and landed.amount_out == route.expected_out > route.min_out
