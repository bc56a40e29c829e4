"""Raydium-style constant-product pools (CPMM), in integer base units.

The trade fee is taken from the input first, rounded up in the pool's favour:
``fee = ceil(amount_in * fee_ppm / 1_000_000)``; the rest trades against the
reserves as ``out = floor(in_after_fee * y / (x + in_after_fee))``, as Raydium's
``cp-swap`` program computes it. The whole fee stays in the pool.
"""

from __future__ import annotations

import msgspec

from shared.market.fixed_point import ceil_div
from shared.market.swap import SwapResult

__all__ = ["FEE_RATE_DENOMINATOR", "RAYDIUM_DEFAULT_FEE_PPM", "CpmmPool", "swap_out"]

FEE_RATE_DENOMINATOR = 1_000_000
RAYDIUM_DEFAULT_FEE_PPM = 2_500
"""Raydium's standard trade fee tier: 0.25 %."""


class CpmmPool(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one constant-product pool; ``reserve_a`` is in ``token_a`` base units."""

    pool_id: str
    token_a: str
    token_b: str
    reserve_a: int
    reserve_b: int
    fee_ppm: int = RAYDIUM_DEFAULT_FEE_PPM

    def __post_init__(self) -> None:
        if self.token_a == self.token_b:
            raise ValueError(f"pool {self.pool_id} trades {self.token_a} against itself")
        if self.reserve_a <= 0 or self.reserve_b <= 0:
            raise ValueError(f"pool {self.pool_id} needs positive reserves on both sides")
        _check_fee(self.fee_ppm)

    def reserves_for(self, token_in: str) -> tuple[int, int]:
        """``(reserve_in, reserve_out)`` for a swap selling ``token_in``."""
        if token_in == self.token_a:
            return self.reserve_a, self.reserve_b
        if token_in == self.token_b:
            return self.reserve_b, self.reserve_a
        raise ValueError(f"pool {self.pool_id} does not trade {token_in}")

    def swap(self, token_in: str, amount_in: int) -> SwapResult:
        """Exact-input swap of ``amount_in`` base units of ``token_in``."""
        reserve_in, reserve_out = self.reserves_for(token_in)
        return swap_out(amount_in, reserve_in, reserve_out, self.fee_ppm)


def swap_out(amount_in: int, reserve_in: int, reserve_out: int, fee_ppm: int) -> SwapResult:
    """Output of an exact-input constant-product swap, fee charged on the input.

    A constant-product pool never runs dry, so the result is always ``filled``
    (its output may still be zero for a dust input).
    """
    if amount_in < 0:
        raise ValueError(f"amount in must not be negative, got {amount_in}")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("reserves must be positive")
    _check_fee(fee_ppm)
    fee = ceil_div(amount_in * fee_ppm, FEE_RATE_DENOMINATOR)
    in_after_fee = amount_in - fee
    amount_out = in_after_fee * reserve_out // (reserve_in + in_after_fee)
    return SwapResult(amount_in=amount_in, amount_in_consumed=amount_in, amount_out=amount_out, fee=fee)


def _check_fee(fee_ppm: int) -> None:
    if not 0 <= fee_ppm < FEE_RATE_DENOMINATOR:
        raise ValueError(f"fee must be in 0..{FEE_RATE_DENOMINATOR - 1} ppm, got {fee_ppm}")
