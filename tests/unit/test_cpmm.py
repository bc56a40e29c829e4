from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.market.cpmm import RAYDIUM_DEFAULT_FEE_PPM, CpmmPool, swap_out

reserves = st.integers(min_value=1, max_value=2**64 - 1)
amounts = st.integers(min_value=0, max_value=2**64 - 1)
fees = st.integers(min_value=0, max_value=999_999)


@pytest.mark.parametrize(
    ("amount_in", "reserve_in", "reserve_out", "expected"),
    [
        (10, 4_000_000, 70_000_000_000, 174_999),
        (10, 20_000, 30_000, 14),
        (10, 19_990, 30_000, 15),
        (100, 60_000, 30_000, 49),
    ],
)
def test_cpmm_matches_the_public_rounding_vectors_without_fee(amount_in, reserve_in, reserve_out, expected):
    result = swap_out(amount_in, reserve_in, reserve_out, 0)
    assert result.amount_out == expected
    assert result.fee == 0


def test_raydium_default_fee_is_a_quarter_percent():
    assert RAYDIUM_DEFAULT_FEE_PPM == 2_500


def test_fee_is_taken_from_the_input_before_the_curve():
    # fee = 1_000_000 * 0.25 % = 2_500; out = floor(997_500 * 1e9 / (1e9 + 997_500)) = 996_505
    result = swap_out(1_000_000, 10**9, 10**9, 2_500)
    assert (result.fee, result.amount_out) == (2_500, 996_505)
    assert result.amount_in_consumed == 1_000_000 and result.filled


@pytest.mark.parametrize(("amount_in", "fee"), [(1, 1), (399, 1), (400, 1), (401, 2), (800, 2), (801, 3)])
def test_fee_rounds_up_in_the_pools_favour(amount_in, fee):
    assert swap_out(amount_in, 10**9, 10**9, 2_500).fee == fee


def test_a_dust_input_is_all_fee_and_gives_nothing():
    assert swap_out(1, 10**9, 10**9, 2_500).amount_out == 0


@given(amounts, reserves, reserves, fees)
def test_output_never_reaches_the_output_reserve(amount_in, reserve_in, reserve_out, fee_ppm):
    assert swap_out(amount_in, reserve_in, reserve_out, fee_ppm).amount_out < reserve_out


@given(amounts, amounts, reserves, reserves, fees)
def test_more_input_never_gives_less_output(first, second, reserve_in, reserve_out, fee_ppm):
    small, large = sorted((first, second))
    assert (
        swap_out(small, reserve_in, reserve_out, fee_ppm).amount_out
        <= swap_out(large, reserve_in, reserve_out, fee_ppm).amount_out
    )


@given(amounts, reserves, reserves, fees, fees)
def test_a_higher_fee_never_gives_more_output(amount_in, reserve_in, reserve_out, first, second):
    low, high = sorted((first, second))
    assert (
        swap_out(amount_in, reserve_in, reserve_out, high).amount_out
        <= swap_out(amount_in, reserve_in, reserve_out, low).amount_out
    )


@given(amounts, reserves, reserves, fees)
def test_fee_is_never_negative_and_never_exceeds_the_input(amount_in, reserve_in, reserve_out, fee_ppm):
    fee = swap_out(amount_in, reserve_in, reserve_out, fee_ppm).fee
    assert 0 <= fee <= amount_in
    assert fee * 1_000_000 >= amount_in * fee_ppm


@given(amounts, reserves, reserves, fees)
def test_the_constant_product_never_decreases(amount_in, reserve_in, reserve_out, fee_ppm):
    out = swap_out(amount_in, reserve_in, reserve_out, fee_ppm).amount_out
    assert (reserve_in + amount_in) * (reserve_out - out) >= reserve_in * reserve_out


def test_pool_swap_uses_the_reserves_of_the_direction_sold():
    pool = CpmmPool(
        pool_id="p", token_a="SOL", token_b="USDC", reserve_a=4_000_000, reserve_b=70_000_000_000, fee_ppm=0
    )
    assert pool.swap("SOL", 10).amount_out == 174_999
    assert pool.swap("USDC", 70_000).amount_out == swap_out(70_000, 70_000_000_000, 4_000_000, 0).amount_out
    assert pool.reserves_for("USDC") == (70_000_000_000, 4_000_000)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"token_b": "SOL"}, "against itself"),
        ({"reserve_a": 0}, "positive reserves"),
        ({"reserve_b": -5}, "positive reserves"),
        ({"fee_ppm": 1_000_000}, "fee must be"),
        ({"fee_ppm": -1}, "fee must be"),
    ],
)
def test_a_malformed_pool_is_refused(fields, message):
    values = {"pool_id": "p", "token_a": "SOL", "token_b": "USDC", "reserve_a": 1, "reserve_b": 1, "fee_ppm": 0}
    with pytest.raises(ValueError, match=message):
        CpmmPool(**(values | fields))


def test_a_pool_refuses_a_token_it_does_not_trade():
    pool = CpmmPool(pool_id="p", token_a="SOL", token_b="USDC", reserve_a=1, reserve_b=1)
    with pytest.raises(ValueError, match="does not trade BONK"):
        pool.swap("BONK", 1)


def test_a_negative_input_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        swap_out(-1, 1, 1, 0)
