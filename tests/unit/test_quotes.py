from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.market.cpmm import CpmmPool, swap_out
from shared.market.dlmm import Bin, DlmmPool
from shared.market.quotes import FAILURE_LIQUIDITY, FAILURE_SLIPPAGE, execute_on_pool, min_out, quote_pool
from shared.market.tokens import UnknownToken

# Two 1:1 stable pools with 6 decimals on both sides keep the arithmetic readable.
STABLE_CPMM = CpmmPool(pool_id="cpmm", token_a="USDC", token_b="USDT",
                       reserve_a=1_000_000_000, reserve_b=1_000_000_000, fee_ppm=0)
THIN_DLMM = DlmmPool(
    pool_id="dlmm", token_x="USDC", token_y="USDT", bin_step=1, active_id=0,
    bins=(Bin(bin_id=-1, reserve_y=2_000_000), Bin(bin_id=0, reserve_x=1_000_000, reserve_y=1_000_000)),
    base_factor=10_000, variable_fee_control=0, max_volatility_accumulator=0,
    volatility_reference=0, index_reference=0,
)


# quotes


def test_a_cpmm_quote_reports_output_fee_impact_and_prices():
    # out = floor(1e6 * 1e9 / (1e9 + 1e6)) = 999_000; at spot it would be 1_000_000 -> 10 bp impact
    quote = quote_pool(STABLE_CPMM, "usdc", 1_000_000)
    assert (quote.venue, quote.pool_id, quote.token_in, quote.token_out) == ("raydium-cpmm", "cpmm", "USDC", "USDT")
    assert (quote.amount_in, quote.amount_out, quote.fee, quote.price_impact_bps) == (1_000_000, 999_000, 0, 10)
    assert (quote.spot_price, quote.executed_price) == ("1", "0.999")
    assert quote.fillable and quote.reason is None and quote.amount_in_consumed == 1_000_000


def test_a_quote_prices_in_token_units_across_different_decimals():
    pool = CpmmPool(pool_id="p", token_a="SOL", token_b="USDC", reserve_a=10**15, reserve_b=150 * 10**12, fee_ppm=2_500)
    quote = quote_pool(pool, "SOL", 10**9)
    # fee 2_500_000 lamports; floor(997_500_000 * 1.5e14 / (1e15 + 997_500_000)) = 149_624_850 micro-USDC
    assert (quote.amount_out, quote.fee) == (149_624_850, 2_500_000)
    assert quote.amount_out == swap_out(10**9, 10**15, 150 * 10**12, 2_500).amount_out
    assert (quote.spot_price, quote.executed_price) == ("150", "149.62485")
    assert quote.price_impact_bps == 0  # 150 short of 149_625_000 at spot: 0.01 bp, rounded down


def test_a_dlmm_quote_includes_the_fee_and_stays_in_the_active_bin_without_impact():
    quote = quote_pool(THIN_DLMM, "USDC", 500_000)
    # fee 0.01 % = 50, the other 499_950 convert at exactly 1
    assert (quote.venue, quote.amount_out, quote.fee, quote.price_impact_bps) == ("meteora-dlmm", 499_950, 50, 0)
    assert quote.spot_price == "1"


def test_a_dlmm_quote_that_runs_out_of_liquidity_is_not_fillable():
    quote = quote_pool(THIN_DLMM, "USDC", 10_000_000)
    assert not quote.fillable
    assert quote.amount_in_consumed < quote.amount_in
    assert quote.amount_out == 3_000_000
    assert quote.reason is not None and quote.reason.startswith("insufficient liquidity: pool can take only 3.0")
    assert quote.reason.endswith("of 10 USDC")


def test_a_dust_quote_is_not_fillable():
    pool = CpmmPool(pool_id="p", token_a="USDC", token_b="USDT", reserve_a=10**9, reserve_b=10**9, fee_ppm=2_500)
    quote = quote_pool(pool, "USDC", 1)
    assert not quote.fillable and quote.amount_out == 0
    assert quote.reason == "amount too small: the output rounds down to zero"
    assert quote.price_impact_bps == 10_000


@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_a_quote_needs_a_positive_int_amount(amount):
    with pytest.raises(ValueError, match="positive int"):
        quote_pool(STABLE_CPMM, "USDC", amount)


def test_a_quote_refuses_a_token_the_pool_does_not_trade():
    with pytest.raises(ValueError, match="does not trade SOL"):
        quote_pool(STABLE_CPMM, "SOL", 1)
    with pytest.raises(UnknownToken):
        quote_pool(STABLE_CPMM, "DOGE", 1)


@given(st.integers(min_value=10**6, max_value=10**12))
def test_price_impact_grows_with_size_on_a_cpmm(amount):
    # From 1 USDC up, each doubling adds whole basis points, far above output rounding.
    small = quote_pool(STABLE_CPMM, "USDC", amount)
    large = quote_pool(STABLE_CPMM, "USDC", amount * 2)
    assert 0 <= small.price_impact_bps <= large.price_impact_bps <= 10_000


# minimum output


@pytest.mark.parametrize(
    ("amount_out", "slippage_bps", "expected"),
    [(1_000_000, 50, 995_000), (999, 50, 994), (1_000_000, 0, 1_000_000), (1_000_000, 10_000, 0), (0, 50, 0)],
)
def test_min_out_rounds_down_after_the_slippage_tolerance(amount_out, slippage_bps, expected):
    assert min_out(amount_out, slippage_bps) == expected


@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=10_000))
def test_min_out_never_exceeds_the_quote_nor_undercuts_the_tolerance(amount_out, slippage_bps):
    least = min_out(amount_out, slippage_bps)
    assert least <= amount_out
    assert (amount_out - least) * 10_000 < amount_out * slippage_bps + 10_000


@pytest.mark.parametrize("slippage_bps", [-1, 10_001])
def test_min_out_refuses_a_slippage_out_of_range(slippage_bps):
    with pytest.raises(ValueError, match="slippage"):
        min_out(100, slippage_bps)


# settlement


def test_execution_settles_at_the_quoted_amount_when_the_pool_has_not_moved():
    quote = quote_pool(STABLE_CPMM, "USDC", 1_000_000)
    result = execute_on_pool(STABLE_CPMM, "USDC", 1_000_000, min_out(quote.amount_out, 50))
    assert result.ok and result.failure is None and result.failure_code is None
    assert (result.amount_out, result.fee, result.executed_price) == (quote.amount_out, quote.fee, "0.999")


def test_execution_below_the_minimum_fails_with_a_slippage_reason():
    result = execute_on_pool(STABLE_CPMM, "USDC", 1_000_000, 1_000_000)
    assert not result.ok
    assert result.failure == "slippage exceeded: got 0.999 USDT < min 1 USDT"
    assert result.failure_code == FAILURE_SLIPPAGE
    assert result.amount_out == 999_000 and result.min_amount_out == 1_000_000


def test_execution_that_cannot_fill_fails_with_a_liquidity_reason():
    result = execute_on_pool(THIN_DLMM, "USDC", 10_000_000, 0)
    assert not result.ok and result.failure_code == FAILURE_LIQUIDITY
    assert result.failure is not None and "insufficient liquidity" in result.failure


def test_execution_refuses_a_negative_minimum():
    with pytest.raises(ValueError, match="minimum"):
        execute_on_pool(STABLE_CPMM, "USDC", 1, -1)
