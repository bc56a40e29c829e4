"""Quotes and settlement: one pool's answer to "what do I get for this much?".

The router quotes with `quote_pool` at the slot it routes in; the simulated chain
settles with `execute_on_pool` against the pool as it is at the landing slot. Both
run the same swap math, so a quote and its settlement differ only because the
market moved in between.
"""

from __future__ import annotations

import msgspec

from shared.amounts import format_amount, format_price
from shared.market.pools import Pool, other_token, spot_ratio, swap_on_pool, venue_of
from shared.market.swap import SwapResult
from shared.market.tokens import get_token

__all__ = [
    "FAILURE_LIQUIDITY",
    "FAILURE_SLIPPAGE",
    "ExecutionResult",
    "Quote",
    "execute_on_pool",
    "min_out",
    "quote_pool",
]

FAILURE_SLIPPAGE = "slippage"
FAILURE_LIQUIDITY = "liquidity"
_BPS = 10_000


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """One pool's quote for an exact-input swap. Amounts in base units.

    ``fee`` is in ``token_in`` base units. ``price_impact_bps`` compares the output
    with what the input after fees would buy at the pool's spot price before the
    trade (``spot_num / spot_den`` base units out per base unit in), rounded down.
    A quote is ``fillable`` only when the pool takes the whole input and gives a
    non-zero output; otherwise ``reason`` says why not.
    """

    venue: str
    pool_id: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    fee: int
    price_impact_bps: int
    spot_num: int
    spot_den: int
    fillable: bool
    amount_in_consumed: int
    reason: str | None = None

    @property
    def spot_price(self) -> str:
        """``token_out`` per ``token_in`` before the trade, in token units, a decimal string for display."""
        return _display_price(self.spot_num, self.spot_den, self.token_in, self.token_out)

    @property
    def executed_price(self) -> str:
        """``token_out`` per ``token_in`` the swap gives, in token units, a decimal string for display."""
        return _display_price(self.amount_out, self.amount_in_consumed, self.token_in, self.token_out)


class ExecutionResult(msgspec.Struct, frozen=True, kw_only=True):
    """A settled (``ok``) or refused swap. A refused swap moves no tokens.

    ``failure_code`` is `FAILURE_SLIPPAGE` or `FAILURE_LIQUIDITY` when refused, and
    ``failure`` is a sentence such as ``"slippage exceeded: got 149.2 USDC < min 149.5 USDC"``.
    ``amount_out`` and ``fee`` are what the swap gave or would have given.
    """

    ok: bool
    pool_id: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    fee: int
    min_amount_out: int
    executed_price: str
    failure: str | None = None
    failure_code: str | None = None


def min_out(amount_out: int, slippage_bps: int) -> int:
    """Least acceptable output for a slippage tolerance: ``floor(out * (10_000 - bps) / 10_000)``."""
    if not 0 <= slippage_bps <= _BPS:
        raise ValueError(f"slippage must be in 0..{_BPS} basis points, got {slippage_bps}")
    if amount_out < 0:
        raise ValueError("amount out must not be negative")
    return amount_out * (_BPS - slippage_bps) // _BPS


def quote_pool(pool: Pool, token_in: str, amount_in: int) -> Quote:
    """Quote selling ``amount_in`` base units of ``token_in`` into ``pool``."""
    symbol_in = get_token(token_in).symbol
    symbol_out = other_token(pool, symbol_in)
    _check_amount(amount_in)
    result = swap_on_pool(pool, symbol_in, amount_in)
    num, den = spot_ratio(pool, symbol_in)
    reason = _unfillable_reason(result, symbol_in)
    return Quote(
        venue=venue_of(pool),
        pool_id=pool.pool_id,
        token_in=symbol_in,
        token_out=symbol_out,
        amount_in=amount_in,
        amount_out=result.amount_out,
        fee=result.fee,
        price_impact_bps=_price_impact_bps(result, num, den),
        spot_num=num,
        spot_den=den,
        fillable=reason is None,
        amount_in_consumed=result.amount_in_consumed,
        reason=reason,
    )


def execute_on_pool(pool: Pool, token_in: str, amount_in: int, min_amount_out: int) -> ExecutionResult:
    """Settle a swap: fill it completely with at least ``min_amount_out``, or refuse it."""
    symbol_in = get_token(token_in).symbol
    symbol_out = other_token(pool, symbol_in)
    _check_amount(amount_in)
    if min_amount_out < 0:
        raise ValueError("minimum amount out must not be negative")
    result = swap_on_pool(pool, symbol_in, amount_in)
    failure, code = None, None
    if not result.filled:
        failure, code = _unfillable_reason(result, symbol_in), FAILURE_LIQUIDITY
    elif result.amount_out < min_amount_out:
        decimals = get_token(symbol_out).decimals
        got = format_amount(result.amount_out, decimals)
        least = format_amount(min_amount_out, decimals)
        failure = f"slippage exceeded: got {got} {symbol_out} < min {least} {symbol_out}"
        code = FAILURE_SLIPPAGE
    return ExecutionResult(
        ok=failure is None,
        pool_id=pool.pool_id,
        token_in=symbol_in,
        token_out=symbol_out,
        amount_in=amount_in,
        amount_out=result.amount_out,
        fee=result.fee,
        min_amount_out=min_amount_out,
        executed_price=_display_price(result.amount_out, result.amount_in_consumed, symbol_in, symbol_out),
        failure=failure,
        failure_code=code,
    )


def _check_amount(amount_in: int) -> None:
    if isinstance(amount_in, bool) or not isinstance(amount_in, int) or amount_in <= 0:
        raise ValueError(f"amount in must be a positive int of base units, got {amount_in!r}")


def _unfillable_reason(result: SwapResult, symbol_in: str) -> str | None:
    if not result.filled:
        decimals = get_token(symbol_in).decimals
        took = format_amount(result.amount_in_consumed, decimals)
        wanted = format_amount(result.amount_in, decimals)
        return f"insufficient liquidity: pool can take only {took} of {wanted} {symbol_in}"
    if result.amount_out == 0:
        return "amount too small: the output rounds down to zero"
    return None


def _price_impact_bps(result: SwapResult, num: int, den: int) -> int:
    net_in = result.amount_in_consumed - result.fee
    at_spot = net_in * num  # the output at spot price, times den
    if at_spot <= 0:
        return _BPS
    shortfall = at_spot - result.amount_out * den
    return max(0, shortfall * _BPS // at_spot)


def _display_price(out_units: int, in_units: int, symbol_in: str, symbol_out: str) -> str:
    if in_units == 0:
        return "0"
    scale_in = 10 ** get_token(symbol_in).decimals
    scale_out = 10 ** get_token(symbol_out).decimals
    return format_price(out_units * scale_in, in_units * scale_out)
