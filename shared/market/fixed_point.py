"""Q64.64 fixed-point arithmetic as Meteora's DLMM program does it.

A Q64.64 number is an int ``v`` meaning ``v / 2**64``. `pow_q64` reproduces the
program's ``u64x64_math::pow`` bit for bit (including its trick of inverting a base
>= 1 so that squaring never overflows 128 bits), so bin prices here equal the
on-chain ones. Like the program's, a price keeps at least 13 significant digits for
prices between e**-12 and e**12 and fewer towards the ends of the Q64.64 range.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "BASIS_POINT_MAX",
    "MAX_EXPONENT",
    "ONE",
    "SCALE_OFFSET",
    "U128_MAX",
    "ceil_div",
    "get_price_from_id",
    "mul_shr",
    "pow_q64",
    "shl_div",
]

SCALE_OFFSET = 64
ONE = 1 << SCALE_OFFSET
U128_MAX = (1 << 128) - 1
BASIS_POINT_MAX = 10_000
MAX_EXPONENT = 0x80000
"""Exponents at or above this overflow Q64.64 for any bin step; the program refuses them."""


def ceil_div(num: int, den: int) -> int:
    """``ceil(num / den)`` for a non-negative ``num`` and positive ``den``."""
    return -(-num // den)


def pow_q64(base: int, exp: int) -> int:
    """``base ** exp`` for a Q64.64 ``base`` and a signed integer ``exp``.

    Exponentiation by squaring over the 19 low bits of ``|exp|``, truncating after
    every product, then one final inversion when needed, exactly as the program.
    Raises `ValueError` where the program returns ``None`` (overflow, zero result).
    """
    if exp == 0:
        return ONE
    invert = exp < 0
    magnitude = -exp if invert else exp
    if magnitude >= MAX_EXPONENT:
        raise ValueError(f"exponent {exp} is out of the Q64.64 range")
    if not 0 < base <= U128_MAX:
        raise ValueError("base must be a positive u128")
    squared = base
    result = ONE
    if squared >= result:
        # Work with 1/base (< 1) so squares stay below 2**128, and flip the final inversion.
        squared = U128_MAX // squared
        invert = not invert
    bit = 1
    while bit < MAX_EXPONENT:
        if magnitude & bit:
            result = (result * squared) >> SCALE_OFFSET
        squared = (squared * squared) >> SCALE_OFFSET
        bit <<= 1
    if result == 0:
        raise ValueError(f"base ** {exp} is outside the Q64.64 range")
    if invert:
        result = U128_MAX // result
    return result


@lru_cache(maxsize=1 << 16)
def get_price_from_id(bin_id: int, bin_step: int) -> int:
    """Price of DLMM bin ``bin_id`` as Q64.64: ``(1 + bin_step / 10_000) ** bin_id``.

    The price is in base units of token Y per base unit of token X.
    """
    if not 1 <= bin_step <= BASIS_POINT_MAX:
        raise ValueError(f"bin step must be in 1..{BASIS_POINT_MAX} basis points, got {bin_step}")
    bps = (bin_step << SCALE_OFFSET) // BASIS_POINT_MAX
    return pow_q64(ONE + bps, bin_id)


def mul_shr(x: int, y: int, round_up: bool = False) -> int:
    """``x * y / 2**64`` rounded down, or up when ``round_up``."""
    product = x * y
    result = product >> SCALE_OFFSET
    if round_up and product & (ONE - 1):
        result += 1
    return result


def shl_div(x: int, y: int, round_up: bool = False) -> int:
    """``x * 2**64 / y`` rounded down, or up when ``round_up``."""
    if y == 0:
        raise ZeroDivisionError("Q64.64 division by zero")
    shifted = x << SCALE_OFFSET
    return ceil_div(shifted, y) if round_up else shifted // y
