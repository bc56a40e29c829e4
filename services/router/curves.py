"""Output curves: a pool's exact output for any input, fast enough to search over.

Splitting an order means evaluating a pool's output for dozens of trial amounts. A
DLMM swap walks up to a hundred and more bins per call; a `Curve` walks them once,
keeps running totals of what emptying each bin takes and gives, and then answers
any amount with a bisection plus the program's formula for the one partly filled
bin. The answers equal `DlmmPool.swap` exactly (the unit tests hold it to that), but
the router never relies on it: the amounts it publishes come from the pool math
itself; curves only steer the search.
"""

from __future__ import annotations

from bisect import bisect_left

from shared.market.cpmm import CpmmPool, swap_out
from shared.market.dlmm import FEE_PRECISION, DlmmPool, input_to_empty
from shared.market.fixed_point import ceil_div, get_price_from_id, mul_shr, shl_div
from shared.market.pools import Pool

__all__ = ["Curve", "curve_for"]


class Curve:
    """Output of one pool for one swap direction, as a function of the input.

    ``capacity`` is the most input the pool can take whole, or None when it takes
    any amount (a constant-product pool). `out` returns None above the capacity.
    """

    __slots__ = ("capacity", "_out")

    def __init__(self, out, capacity: int | None) -> None:
        self._out = out
        self.capacity = capacity

    def out(self, amount_in: int) -> int | None:
        """Output for ``amount_in`` base units (0 for 0), or None if the pool cannot take it all."""
        if amount_in <= 0:
            return 0
        if self.capacity is not None and amount_in > self.capacity:
            return None
        return self._out(amount_in)


def curve_for(pool: Pool, token_in: str) -> Curve:
    """The curve of ``pool`` for swaps selling ``token_in`` (a canonical symbol)."""
    if isinstance(pool, CpmmPool):
        reserve_in, reserve_out = pool.reserves_for(token_in)
        fee_ppm = pool.fee_ppm
        return Curve(lambda amount: swap_out(amount, reserve_in, reserve_out, fee_ppm).amount_out, None)
    return _dlmm_curve(pool, pool.is_swap_for_y(token_in))


def _dlmm_curve(pool: DlmmPool, swap_for_y: bool) -> Curve:
    # Per non-empty bin, in swap order: the input that empties it (fee included) and its price and rate.
    ends: list[int] = []  # cumulative input that empties bins 0..i
    outs: list[int] = []  # cumulative output of bins 0..i
    bins: list[tuple[int, int, int]] = []  # (price, fee rate, reserve out)
    consumed = 0
    given = 0
    for item in pool.bins_in_direction(swap_for_y):
        reserve_out = item.reserve_y if swap_for_y else item.reserve_x
        if reserve_out == 0:
            continue
        price = get_price_from_id(item.bin_id, pool.bin_step)
        rate = pool.fee_rate_at(item.bin_id)
        max_in = input_to_empty(reserve_out, price, swap_for_y)
        consumed += max_in + ceil_div(max_in * rate, FEE_PRECISION - rate)
        given += reserve_out
        ends.append(consumed)
        outs.append(given)
        bins.append((price, rate, reserve_out))

    def out(amount_in: int) -> int:
        # The swap empties every bin whose running total is strictly below the input,
        # then converts what is left in the next bin (see `swap_exact_in`).
        emptied = bisect_left(ends, amount_in)
        left = amount_in - (ends[emptied - 1] if emptied else 0)
        price, rate, reserve_out = bins[emptied]
        net = left - ceil_div(left * rate, FEE_PRECISION)
        converted = mul_shr(price, net) if swap_for_y else shl_div(net, price)
        return (outs[emptied - 1] if emptied else 0) + min(converted, reserve_out)

    return Curve(out, consumed)
