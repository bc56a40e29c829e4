import pytest

from services.router.decide import NoRoute, decide
from shared.market.model import Market
from tests.kit import SPEC


def test_the_route_is_the_quote_with_the_most_output_and_records_every_quote():
    market = Market(7)
    for slot in range(1000, 1400, 40):
        quotes = market.quotes("SOL", "USDC", SPEC.amount_in, slot)
        route = decide(SPEC, quotes, slot)
        assert route.expected_out == max(q.amount_out for q in quotes if q.fillable)
        assert {q.venue for q in route.quotes} == {"raydium-cpmm", "meteora-dlmm"}
        assert route.min_out == route.expected_out * (10_000 - SPEC.slippage_bps) // 10_000


def test_each_venue_wins_some_of_the_time():
    market = Market(7)
    winners = {decide(SPEC, market.quotes("SOL", "USDC", SPEC.amount_in, s), s).venue for s in range(0, 4000, 50)}
    assert winners == {"raydium-cpmm", "meteora-dlmm"}


def test_a_pair_with_no_pool_has_no_route():
    with pytest.raises(NoRoute):
        decide(SPEC, (), 1)


def test_an_order_too_large_for_one_venue_goes_to_the_one_that_can_fill_it():
    market = Market(7)
    huge = 100_000 * 10**9
    quotes = market.quotes("SOL", "USDC", huge, 500)
    route = decide(SPEC, quotes, 500)
    assert route.venue == "raydium-cpmm"
    assert any(not q.fillable for q in route.quotes)
