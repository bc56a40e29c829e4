"""Token amounts: decimal strings outside, integer base units inside.

`parse_amount` turns what a client sends (a decimal string such as ``"1.5"``, an
integer, or a JSON number that arrived as a float) into base units, and rejects
everything that is not an exact, positive, representable amount. `format_amount`
is its inverse. `format_price` renders a ratio of two integers for display.

Floats are accepted only when their shortest ``repr`` is an exact decimal with no
more places than the token allows: ``1.5`` is 1.5, ``0.1`` is 0.1 (its repr, which
is what the client wrote), but ``0.1 + 0.2`` (repr ``0.30000000000000004``) has
more places than any token and is refused rather than silently rounded.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

__all__ = ["MAX_BASE_UNITS", "AmountError", "format_amount", "format_price", "parse_amount"]

MAX_BASE_UNITS = 2**64 - 1
"""Largest amount an SPL token account can hold (u64)."""

# Longer inputs cannot be valid amounts; refusing them early keeps parsing O(1).
_MAX_TEXT_LENGTH = 64
_PLAIN_DECIMAL = re.compile(r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?")
_EXPONENT_FORM = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)e[+-]?[0-9]*")
_NON_FINITE = {"nan", "snan", "inf", "infinity"}


class AmountError(ValueError):
    """An amount that cannot be turned into a positive number of base units."""


def parse_amount(value: str | int | float, decimals: int) -> int:
    """Convert a token-unit amount to base units, exactly.

    ``value`` is a plain decimal string (``"1.5"``, ``"0.25"``, ``"10"``), an int
    (whole tokens) or a float that is exact through its repr. ``decimals`` is the
    token's number of decimal places (SOL 9, USDC 6, BONK 5).

    Trailing zeros are fine (``"1.500"`` for USDC); digits that would be lost
    are not. Raises `AmountError` for anything that is not a positive amount of at
    most ``2**64 - 1`` base units.
    """
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 18:
        raise ValueError(f"token decimals must be an int in 0..18, got {decimals!r}")
    if isinstance(value, bool):
        raise AmountError("amount must be a number or a decimal string, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise AmountError("amount must not be negative")
        return _checked(min(value, MAX_BASE_UNITS + 1) * 10**decimals)
    if isinstance(value, float):
        text = repr(value)
        if text.lower().lstrip("+-") in _NON_FINITE:
            raise AmountError("amount must be a finite number, not NaN or Infinity")
        whole, frac = _split_decimal(Decimal(text))
    elif isinstance(value, str):
        whole, frac = _split_text(value)
    else:
        raise AmountError(f"amount must be a number or a decimal string, not {type(value).__name__}")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        places = "place" if len(frac) == 1 else "places"
        raise AmountError(f"amount has {len(frac)} decimal {places}; this token allows at most {decimals}")
    return _checked(whole * 10**decimals + (int(frac.ljust(decimals, "0")) if frac else 0))


def _split_text(text: str) -> tuple[int, str]:
    if len(text) > _MAX_TEXT_LENGTH:
        raise AmountError(f"amount is too long ({len(text)} characters)")
    stripped = text.strip()
    if not stripped:
        raise AmountError("amount is empty")
    lowered = stripped.lower()
    if lowered.lstrip("+-") in _NON_FINITE:
        raise AmountError("amount must be a finite number, not NaN or Infinity")
    if lowered.startswith("-"):
        raise AmountError("amount must not be negative")
    if _EXPONENT_FORM.fullmatch(lowered):
        raise AmountError("exponent notation is not accepted; write the amount as a plain decimal")
    match = _PLAIN_DECIMAL.fullmatch(stripped)
    if match is None or not (match["int"] or match["frac"]):
        raise AmountError(f"amount {text!r} is not a decimal number")
    return int(match["int"] or "0"), match["frac"] or ""


def _split_decimal(number: Decimal) -> tuple[int, str]:
    if number.is_signed() and number != 0:
        raise AmountError("amount must not be negative")
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: NaN and Infinity were refused earlier
    text = "".join(map(str, digits))
    if exponent >= 0:
        if len(text) + exponent > 30:  # far beyond u64 in any token
            raise AmountError(f"amount is too large (more than {MAX_BASE_UNITS} base units)")
        return int(text + "0" * exponent), ""
    places = -exponent
    text = text.rjust(places + 1, "0")
    return int(text[:-places]), text[-places:]


def _checked(base_units: int) -> int:
    if base_units == 0:
        raise AmountError("amount must be greater than zero")
    if base_units > MAX_BASE_UNITS:
        raise AmountError(f"amount is too large (more than {MAX_BASE_UNITS} base units)")
    return base_units


def format_amount(base_units: int, decimals: int) -> str:
    """Render base units as a canonical token-unit decimal string.

    Trailing fractional zeros are dropped and a whole amount has no point:
    ``format_amount(1_500_000_000, 9) == "1.5"``, ``format_amount(0, 9) == "0"``.
    ``parse_amount(format_amount(n, d), d) == n`` for every valid positive ``n``.
    """
    if isinstance(base_units, bool) or not isinstance(base_units, int):
        raise TypeError(f"base units must be an int, got {type(base_units).__name__}")
    if decimals < 0:
        raise ValueError(f"token decimals must not be negative, got {decimals}")
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"


def format_price(num: int, den: int, significant_digits: int = 10) -> str:
    """Render ``num / den`` with ``significant_digits`` significant digits, exactly rounded.

    Division is correctly rounded (half to even) from the exact integers, never
    through a float; the result is a plain decimal without exponent or trailing
    zeros: ``format_price(1, 3) == "0.3333333333"``, ``format_price(150, 1) == "150"``.
    """
    if den == 0:
        raise ValueError("price denominator must not be zero")
    if significant_digits < 1:
        raise ValueError("a price needs at least one significant digit")
    if num == 0:
        return "0"
    context = Context(prec=significant_digits, rounding=ROUND_HALF_EVEN)
    quotient = context.divide(Decimal(num), Decimal(den))
    text = format(quotient, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
