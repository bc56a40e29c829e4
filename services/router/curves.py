"""Output curves: a pool's exact output for any input, fast enough to search over.

Splitting an order means evaluating a pool's output for dozens of trial amounts. A
DLMM swap walks up to a hundred and more bins per call; a `Curve` walks them once,
keeps running totals of what emptying each bin takes and gives, and then answers
any amount with a bisection plus the program's formula for the one partly filled
bin; a CPMM curve is `cpmm.swap_out` without its checks. The answers equal the pools'
own swaps exactly (the unit tests hold them to that), but the router never publishes
them: the amounts it publishes come from the pool math itself; curves only steer the
search (which share to split at, and which splits are worth pricing).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Callable

from shared.market.cpmm import FEE_RATE_DENOMINATOR, CpmmPool
from shared.market.dlmm import FEE_PRECISION, DlmmPool, input_to_empty
from shared.market.fixed_point import SCALE_OFFSET, ceil_div, get_price_from_id
from shared.market.pools import Pool

__all__ = ["Curve", "curve_for"]


class Curve:
    """Output of one pool for one swap direction, as a function of the input.

    ``capacity`` is the most input the pool can take whole, or None when it takes
    any amount (a constant-product pool). ``out(amount_in)`` is the output for
    ``amount_in`` base units (0 for 0), or None if the pool cannot take it all.
    """

    __slots__ = ("capacity", "out")

    def __init__(self, out: Callable[[int], int | None], capacity: int | None) -> None:
        self.out = out
        self.capacity = capacity


def curve_for(pool: Pool, token_in: str) -> Curve:
    """The curve of ``pool`` for swaps selling ``token_in`` (a canonical symbol).

    A pool is a frozen snapshot of one slot, so its curves are kept for the pools
    asked about most recently: every order routed in a slot walks each pool's bins once.
    """
    key = (id(pool), token_in)
    kept = _kept.get(key)
    if kept is not None and kept[0] is pool:  # the pool itself is kept too, so its id is not reused meanwhile
        return kept[1]
    if isinstance(pool, CpmmPool):
        reserve_in, reserve_out = pool.reserves_for(token_in)
        curve = _cpmm_curve(reserve_in, reserve_out, pool.fee_ppm)
    else:
        curve = _dlmm_curve(pool, pool.is_swap_for_y(token_in))
    _kept[key] = (pool, curve)
    if len(_kept) > _KEEP:
        del _kept[next(iter(_kept))]  # the oldest
    return curve


_KEEP = 512  # a slot's pools in both directions, several times over
_kept: dict[tuple[int, str], tuple[Pool, Curve]] = {}


def _cpmm_curve(reserve_in: int, reserve_out: int, fee_ppm: int) -> Curve:
    def out(amount_in: int) -> int:
        # `cpmm.swap_out`, inlined: the fee rounded up, then x * y = k on what is left.
        if amount_in <= 0:
            return 0
        net = amount_in + (-amount_in * fee_ppm // FEE_RATE_DENOMINATOR)
        return net * reserve_out // (reserve_in + net)

    return Curve(out, None)


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

    def out(amount_in: int) -> int | None:
        # The swap empties every bin whose running total is strictly below the input,
        # then converts what is left in the next bin (see `swap_exact_in`; `ceil_div`,
        # `mul_shr` and `shl_div` inlined).
        if amount_in <= 0:
            return 0
        if amount_in > consumed:
            return None
        emptied = bisect_left(ends, amount_in)
        price, rate, reserve_out = bins[emptied]
        if emptied:
            left = amount_in - ends[emptied - 1]
            before = outs[emptied - 1]
        else:
            left, before = amount_in, 0
        net = left + (-left * rate // FEE_PRECISION)
        converted = (price * net) >> SCALE_OFFSET if swap_for_y else (net << SCALE_OFFSET) // price
        return before + (converted if converted < reserve_out else reserve_out)

    return Curve(out, consumed)
