from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.market.dlmm import FEE_PRECISION, MAX_FEE_RATE, Bin, DlmmPool, swap_exact_in
from shared.market.fixed_point import ONE, get_price_from_id, pow_q64

ONE_PERCENT = 10_000_000  # over FEE_PRECISION


def make_pool(bins, *, bin_step=100, active_id=0, base_factor=10_000, variable_fee_control=0,
              max_volatility_accumulator=0, volatility_reference=0, index_reference=None):
    return DlmmPool(
        pool_id="test", token_x="X", token_y="Y", bin_step=bin_step, active_id=active_id,
        bins=tuple(bins), base_factor=base_factor, variable_fee_control=variable_fee_control,
        max_volatility_accumulator=max_volatility_accumulator, volatility_reference=volatility_reference,
        index_reference=active_id if index_reference is None else index_reference,
    )


@st.composite
def pools(draw):
    bin_step = draw(st.sampled_from([1, 5, 10, 25, 100]))
    active = draw(st.integers(min_value=-3_000, max_value=3_000))
    below = draw(st.lists(st.integers(min_value=0, max_value=10**12), max_size=6))
    above = draw(st.lists(st.integers(min_value=0, max_value=10**12), max_size=6))
    active_x, active_y = draw(st.integers(0, 10**12)), draw(st.integers(0, 10**12))
    bins = [Bin(bin_id=active - 1 - i, reserve_y=y) for i, y in enumerate(below)][::-1]
    bins.append(Bin(bin_id=active, reserve_x=active_x, reserve_y=active_y))
    bins += [Bin(bin_id=active + 1 + i, reserve_x=x) for i, x in enumerate(above)]
    return make_pool(
        bins, bin_step=bin_step, active_id=active,
        base_factor=draw(st.integers(0, 50_000)),
        variable_fee_control=draw(st.integers(0, 200_000)),
        max_volatility_accumulator=draw(st.integers(0, 500_000)),
        volatility_reference=draw(st.integers(0, 100_000)),
        index_reference=active + draw(st.integers(-3, 3)),
    )


@pytest.mark.parametrize("bin_step", [1, 5, 10, 25, 100, 400])
def test_the_price_of_bin_zero_is_exactly_one(bin_step):
    assert get_price_from_id(0, bin_step) == 1 << 64


@st.composite
def bins_in_price_range(draw):
    # Prices between about e**-12 and e**12; beyond, Q64.64 (on chain too) keeps few digits.
    bin_step = draw(st.sampled_from([1, 2, 5, 10, 20, 25, 50, 80, 100]))
    limit = 120_000 // bin_step
    return draw(st.integers(min_value=-limit, max_value=limit)), bin_step


@given(bins_in_price_range())
def test_bin_price_is_within_rounding_of_the_exact_power(bin_and_step):
    bin_id, bin_step = bin_and_step
    with localcontext() as context:
        context.prec = 80
        exact = (1 + Decimal(bin_step) / 10_000) ** bin_id * ONE
        price = get_price_from_id(bin_id, bin_step)
        assert abs(Decimal(price) - exact) <= exact * Decimal("1e-13") + 2


@given(bins_in_price_range())
def test_bin_price_rises_strictly_with_bin_id(bin_and_step):
    bin_id, bin_step = bin_and_step
    assert get_price_from_id(bin_id, bin_step) < get_price_from_id(bin_id + 1, bin_step)


def test_a_negative_bin_is_the_inverse_of_the_positive_one():
    up, down = get_price_from_id(1, 100), get_price_from_id(-1, 100)
    assert abs(up * down - ONE * ONE) < ONE * 4


def test_an_exponent_beyond_q64_is_refused():
    with pytest.raises(ValueError, match="out of the Q64.64 range"):
        pow_q64(ONE * 2, 0x80000)
    with pytest.raises(ValueError, match="outside the Q64.64 range"):
        get_price_from_id(100_000, 100)


# Hand example: bin step 100 (1 % per bin), base fee 1 % (10_000 * 100 * 10 = 1e7 / 1e9),
# no variable fee, 1_000 Y in each of bins 0, -1 and -2.
# Bin prices: p(0) = 1 exactly; p(-1) = 0.990099...; p(-2) = 0.980296...
# Emptying a bin costs max_in = ceil(1_000 / p) and a fee on top of ceil(max_in * 1e7 / (1e9 - 1e7)).
#   bin 0:  max_in = 1_000, fee = ceil(10.101) = 11 -> 1_011 in for 1_000 out
#   bin -1: 1_000 / p(-1) is 1_010.0000000000000000085 because p(-1) truncates downwards,
#           so max_in = 1_011 (one more than the exact 1_010), fee = ceil(10.212) = 11 -> 1_022 in
#   bin -2: max_in = ceil(1_020.1) = 1_021, fee = ceil(10.313) = 11 -> 1_032 in
HAND_BINS = (Bin(bin_id=-2, reserve_y=1_000), Bin(bin_id=-1, reserve_y=1_000), Bin(bin_id=0, reserve_y=1_000))


def test_selling_x_inside_two_bins_matches_the_hand_computation():
    # 1_500: bin 0 takes 1_011 for 1_000; 489 left: fee ceil(4.89) = 5, 484 * 0.990099 = 479.2 -> 479
    result = swap_exact_in(make_pool(HAND_BINS), True, 1_500)
    assert (result.amount_out, result.fee, result.amount_in_consumed, result.filled) == (1_479, 16, 1_500, True)


def test_selling_x_across_three_bins_matches_the_hand_computation():
    # 2_600: 1_011 + 1_022 empty two bins; 567 left: fee ceil(5.67) = 6, 561 * 0.980296 = 549.9 -> 549
    result = swap_exact_in(make_pool(HAND_BINS), True, 2_600)
    assert (result.amount_out, result.fee, result.filled) == (2_549, 28, True)


def test_a_swap_beyond_all_liquidity_fills_what_it_can_and_says_so():
    result = swap_exact_in(make_pool(HAND_BINS), True, 5_000)
    assert (result.amount_out, result.fee, result.amount_in_consumed) == (3_000, 33, 1_011 + 1_022 + 1_032)
    assert not result.filled


def test_selling_y_walks_up_through_x_bins_as_computed_by_hand():
    # Bin 1 price 1.00999999999999999999 (truncated): emptying it takes ceil(1_000 * p) = 1_010,
    # plus fee ceil(10.202) = 11. 2_100 in: 1_011 (bin 0) + 1_021 (bin 1) = 2_032, 68 left over.
    pool = make_pool([Bin(bin_id=0, reserve_x=1_000), Bin(bin_id=1, reserve_x=1_000)])
    result = swap_exact_in(pool, False, 2_100)
    assert (result.amount_out, result.fee, result.amount_in_consumed, result.filled) == (2_000, 22, 2_032, False)
    # 1_500 in: 1_011 for bin 0, then 489: fee 5, 484 / 1.01 = 479.2 -> 479
    assert swap_exact_in(pool, False, 1_500).amount_out == 1_479


def test_empty_bins_are_skipped_on_the_walk():
    pool = make_pool([Bin(bin_id=-5, reserve_y=1_000), Bin(bin_id=0, reserve_y=0, reserve_x=7)], base_factor=0)
    result = swap_exact_in(pool, True, 100)
    assert result.amount_out == 100 * get_price_from_id(-5, 100) >> 64
    assert result.filled


def test_swap_direction_follows_the_token_sold():
    pool = make_pool(HAND_BINS)
    assert pool.swap("X", 1_500) == swap_exact_in(pool, True, 1_500)
    with pytest.raises(ValueError, match="does not trade Z"):
        pool.swap("Z", 1)


@given(pools(), st.booleans(), st.integers(min_value=0, max_value=2**64 - 1))
def test_output_never_exceeds_the_liquidity_on_that_side(pool, swap_for_y, amount_in):
    result = swap_exact_in(pool, swap_for_y, amount_in)
    assert 0 <= result.amount_out <= pool.liquidity_out(swap_for_y)
    assert 0 <= result.amount_in_consumed <= amount_in
    assert result.filled == (result.amount_in_consumed == amount_in)
    if not result.filled:
        assert result.amount_out == pool.liquidity_out(swap_for_y)


@given(pools(), st.booleans(), st.integers(0, 10**13), st.integers(0, 10**13))
def test_more_input_never_gives_less_output(pool, swap_for_y, first, second):
    small, large = sorted((first, second))
    assert swap_exact_in(pool, swap_for_y, small).amount_out <= swap_exact_in(pool, swap_for_y, large).amount_out


@given(pools(), st.booleans(), st.integers(0, 10**13))
def test_fees_are_never_negative_and_part_of_the_consumed_input(pool, swap_for_y, amount_in):
    result = swap_exact_in(pool, swap_for_y, amount_in)
    assert 0 <= result.fee <= result.amount_in_consumed


@given(pools(), st.booleans(), st.integers(1, 10**13))
def test_no_swap_beats_the_best_bin_price(pool, swap_for_y, amount_in):
    # Every bin a swap reaches is at or beyond the active price, so the active price bounds the output.
    result = swap_exact_in(pool, swap_for_y, amount_in)
    price = pool.spot_price_q64
    net = result.amount_in_consumed - result.fee
    if swap_for_y:
        assert result.amount_out * ONE <= net * price
    else:
        assert result.amount_out * price <= net * ONE


def test_base_fee_rate_is_base_factor_times_bin_step_times_ten():
    assert make_pool(HAND_BINS, bin_step=10, base_factor=20_000).base_fee_rate() == 2_000_000  # 0.2 %


def test_variable_fee_follows_the_volatility_accumulator():
    pool = make_pool(HAND_BINS, bin_step=10, base_factor=20_000, variable_fee_control=40_000,
                     max_volatility_accumulator=350_000, volatility_reference=5_000)
    # bin -3: va = 5_000 + 3 * 10_000 = 35_000; (35_000 * 10)**2 * 40_000 / 1e11 = 49_000
    assert pool.volatility_accumulator_at(-3) == 35_000
    assert pool.fee_rate_at(-3) == 2_000_000 + 49_000
    # far away the accumulator saturates at its maximum: (350_000 * 10)**2 * 40_000 / 1e11 = 4_900_000
    assert pool.volatility_accumulator_at(-100) == 350_000
    assert pool.fee_rate_at(-100) == 2_000_000 + 4_900_000


def test_variable_fee_rounds_up():
    pool = make_pool(HAND_BINS, bin_step=1, variable_fee_control=1, max_volatility_accumulator=10**6)
    # (10_000 * 1)**2 * 1 / 1e11 = 0.001 -> 1
    assert pool.variable_fee_rate(10_000) == 1


@given(pools(), st.integers(0, 200))
def test_the_fee_rate_grows_with_every_bin_crossed(pool, distance):
    reference = pool.index_reference
    for direction in (1, -1):
        nearer = pool.fee_rate_at(reference + direction * distance)
        farther = pool.fee_rate_at(reference + direction * (distance + 1))
        assert nearer <= farther <= MAX_FEE_RATE


def test_a_swap_crossing_many_bins_pays_more_than_the_base_rate():
    bins = [Bin(bin_id=-i, reserve_y=1_000_000) for i in range(20, -1, -1)]
    calm = make_pool(bins, bin_step=10, base_factor=20_000)
    volatile = make_pool(bins, bin_step=10, base_factor=20_000, variable_fee_control=40_000,
                         max_volatility_accumulator=350_000)
    one_bin = 500_000
    assert swap_exact_in(volatile, True, one_bin).fee == swap_exact_in(calm, True, one_bin).fee
    many_bins = 15_000_000
    calm_fee = swap_exact_in(calm, True, many_bins).fee
    volatile_fee = swap_exact_in(volatile, True, many_bins).fee
    assert volatile_fee > calm_fee
    assert calm_fee * FEE_PRECISION >= many_bins * calm.base_fee_rate()


def test_total_fee_is_capped_at_ten_percent():
    pool = make_pool(HAND_BINS, bin_step=100, base_factor=50_000, variable_fee_control=10**9,
                     max_volatility_accumulator=10**6)
    assert pool.fee_rate_at(-50) == MAX_FEE_RATE == FEE_PRECISION // 10


def test_dust_input_is_all_fee():
    result = swap_exact_in(make_pool(HAND_BINS), True, 1)
    assert (result.amount_out, result.fee, result.filled) == (0, 1, True)


@pytest.mark.parametrize(
    ("bins", "message"),
    [
        ([Bin(bin_id=0), Bin(bin_id=-1)], "sorted"),
        ([Bin(bin_id=0), Bin(bin_id=0)], "sorted"),
        ([Bin(bin_id=-1, reserve_x=5)], "below active holds X"),
        ([Bin(bin_id=1, reserve_y=5)], "above active holds Y"),
        ([Bin(bin_id=0, reserve_x=-1)], "negative reserve"),
    ],
)
def test_a_malformed_pool_is_refused(bins, message):
    with pytest.raises(ValueError, match=message):
        make_pool(bins)
