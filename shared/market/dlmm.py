"""Meteora-style liquidity-book pools (DLMM), in integer base units.

Liquidity sits in bins; bin ``i`` has the constant price ``(1 + bin_step/10_000)**i``
(Q64.64, token Y base units per token X base unit, see `get_price_from_id`). Bins
below the active bin hold only Y, bins above only X, the active bin both. Selling X
(``swap_for_y``) takes Y from the active bin and walks down; selling Y takes X and
walks up.

Per bin, as the program's ``Bin::swap`` does:

* the fee rate is ``min(base + variable, 10 %)`` with ``base = base_factor * bin_step * 10``
  and ``variable = ceil((va * bin_step)**2 * variable_fee_control / 1e11)`` over
  ``FEE_PRECISION = 1e9``; the volatility accumulator ``va`` for a bin is
  ``min(volatility_reference + |index_reference - bin_id| * 10_000, max_va)``, so every
  bin crossed makes the next one dearer;
* if the remaining input is more than the bin can absorb, the bin is emptied: the input
  it takes is ``ceil`` of its reserve converted at its price, plus a fee charged on top,
  ``ceil(max_in * rate / (1e9 - rate))``;
* otherwise the fee is taken out of the remaining input, ``ceil(left * rate / 1e9)``, and
  the rest converts at the bin price, rounded down.

Every rounding is in the pool's favour. A pool without enough liquidity fills what it
can and reports ``filled=False`` with ``amount_in_consumed < amount_in``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

import msgspec

from shared.market.fixed_point import BASIS_POINT_MAX, ceil_div, get_price_from_id, mul_shr, shl_div
from shared.market.swap import SwapResult

__all__ = [
    "FEE_PRECISION",
    "MAX_FEE_RATE",
    "Bin",
    "DlmmPool",
    "swap_exact_in",
]

FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000
"""The program caps the total fee rate at 10 %."""
_VARIABLE_FEE_SCALE = 100_000_000_000


class Bin(msgspec.Struct, frozen=True, kw_only=True):
    """One price bin's reserves, in base units."""

    bin_id: int
    reserve_x: int = 0
    reserve_y: int = 0


class DlmmPool(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one DLMM pair: parameters, volatility state and non-empty bins.

    ``bins`` is sorted by ``bin_id``; bins not listed are empty.
    """

    pool_id: str
    token_x: str
    token_y: str
    bin_step: int
    active_id: int
    bins: tuple[Bin, ...]
    base_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int
    volatility_reference: int
    index_reference: int

    def __post_init__(self) -> None:
        if self.token_x == self.token_y:
            raise ValueError(f"pool {self.pool_id} trades {self.token_x} against itself")
        if not 1 <= self.bin_step <= BASIS_POINT_MAX:
            raise ValueError(f"pool {self.pool_id}: bin step {self.bin_step} out of range")
        if min(self.base_factor, self.variable_fee_control, self.max_volatility_accumulator) < 0:
            raise ValueError(f"pool {self.pool_id}: fee parameters must not be negative")
        if self.volatility_reference < 0:
            raise ValueError(f"pool {self.pool_id}: volatility reference must not be negative")
        previous = None
        for item in self.bins:
            if previous is not None and item.bin_id <= previous:
                raise ValueError(f"pool {self.pool_id}: bins must be sorted by unique id")
            previous = item.bin_id
            if item.reserve_x < 0 or item.reserve_y < 0:
                raise ValueError(f"pool {self.pool_id}: bin {item.bin_id} has a negative reserve")
            if item.bin_id < self.active_id and item.reserve_x:
                raise ValueError(f"pool {self.pool_id}: bin {item.bin_id} below active holds X")
            if item.bin_id > self.active_id and item.reserve_y:
                raise ValueError(f"pool {self.pool_id}: bin {item.bin_id} above active holds Y")

    @property
    def spot_price_q64(self) -> int:
        """Price of the active bin (Y base units per X base unit, Q64.64)."""
        return get_price_from_id(self.active_id, self.bin_step)

    def base_fee_rate(self) -> int:
        """Base fee rate over `FEE_PRECISION`."""
        return self.base_factor * self.bin_step * 10

    def volatility_accumulator_at(self, bin_id: int) -> int:
        """The volatility accumulator the program uses while swapping in ``bin_id``."""
        crossed = abs(self.index_reference - bin_id)
        return min(self.volatility_reference + crossed * BASIS_POINT_MAX, self.max_volatility_accumulator)

    def variable_fee_rate(self, volatility_accumulator: int) -> int:
        """Variable fee rate over `FEE_PRECISION` for a volatility accumulator, rounded up."""
        if self.variable_fee_control == 0:
            return 0
        square = (volatility_accumulator * self.bin_step) ** 2
        return ceil_div(square * self.variable_fee_control, _VARIABLE_FEE_SCALE)

    def fee_rate_at(self, bin_id: int) -> int:
        """Total fee rate over `FEE_PRECISION` charged in ``bin_id``, capped at 10 %."""
        variable = self.variable_fee_rate(self.volatility_accumulator_at(bin_id))
        return min(self.base_fee_rate() + variable, MAX_FEE_RATE)

    def is_swap_for_y(self, token_in: str) -> bool:
        """True when selling ``token_in`` moves the pool from X to Y."""
        if token_in == self.token_x:
            return True
        if token_in == self.token_y:
            return False
        raise ValueError(f"pool {self.pool_id} does not trade {token_in}")

    def bins_in_direction(self, swap_for_y: bool) -> Iterable[Bin]:
        """Bins a swap visits, starting at the active bin."""
        if swap_for_y:
            end = bisect_right(self.bins, self.active_id, key=_bin_id)
            return reversed(self.bins[:end])
        start = bisect_left(self.bins, self.active_id, key=_bin_id)
        return self.bins[start:]

    def liquidity_out(self, swap_for_y: bool) -> int:
        """Everything a swap in this direction could take out of the pool."""
        return sum(b.reserve_y if swap_for_y else b.reserve_x for b in self.bins_in_direction(swap_for_y))

    def swap(self, token_in: str, amount_in: int) -> SwapResult:
        """Exact-input swap of ``amount_in`` base units of ``token_in``."""
        return swap_exact_in(self, self.is_swap_for_y(token_in), amount_in)


def _bin_id(item: Bin) -> int:
    return item.bin_id


def swap_exact_in(pool: DlmmPool, swap_for_y: bool, amount_in: int) -> SwapResult:
    """Walk the bins from the active one, filling as much of ``amount_in`` as liquidity allows."""
    if amount_in < 0:
        raise ValueError(f"amount in must not be negative, got {amount_in}")
    left = amount_in
    total_out = 0
    total_fee = 0
    for item in pool.bins_in_direction(swap_for_y):
        if left == 0:
            break
        reserve_out = item.reserve_y if swap_for_y else item.reserve_x
        if reserve_out == 0:
            continue
        price = get_price_from_id(item.bin_id, pool.bin_step)
        rate = pool.fee_rate_at(item.bin_id)
        max_in = input_to_empty(reserve_out, price, swap_for_y)
        max_fee = ceil_div(max_in * rate, FEE_PRECISION - rate)
        if left > max_in + max_fee:
            consumed, out, fee = max_in + max_fee, reserve_out, max_fee
        else:
            fee = ceil_div(left * rate, FEE_PRECISION)
            net = left - fee
            converted = mul_shr(price, net) if swap_for_y else shl_div(net, price)
            consumed, out = left, min(converted, reserve_out)
        left -= consumed
        total_out += out
        total_fee += fee
    return SwapResult(
        amount_in=amount_in,
        amount_in_consumed=amount_in - left,
        amount_out=total_out,
        fee=total_fee,
        filled=left == 0,
    )


def input_to_empty(reserve_out: int, price_q64: int, swap_for_y: bool) -> int:
    """The input (before fees) that takes all of a bin's `reserve_out`, rounded up."""
    if swap_for_y:
        return shl_div(reserve_out, price_q64, round_up=True)
    return mul_shr(reserve_out, price_q64, round_up=True)
