import msgspec
import pytest

from services.router.decide import NoRoute, decide
from services.router.optimize import optimize
from shared import events as ev
from shared.market.model import Market
from tests.kit import SPEC

MARKET = Market(7)


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
    with pytest.raises(NoRoute):
        decide(SPEC, (), 1)


def test_direct_quotes_alone_still_route_to_the_one_with_the_most_output():
    for slot in range(1000, 1400, 40):
        quotes = MARKET.quotes("SOL", "USDC", SPEC.amount_in, slot)
        route = decide(SPEC, quotes, slot)
        assert route.kind == "direct" and route.expected_out == max(q.amount_out for q in quotes if q.fillable)
        assert route.paths[0].legs[0].pool_id == route.pool_id
