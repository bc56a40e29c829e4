"""Prices and times in an order body: exact decimals and absolute expiries."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from services.gateway.errors import bad_request

MAX_OUTPUT = 2**64 - 1
#: 9999-12-31T23:59:59.999Z: the last moment an ISO-8601 order view can show.
MAX_EXPIRY_MS = 253_402_300_799_999


def parse_price(field: str, value: object) -> Fraction:
    """A positive decimal price (string or number) as an exact fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(field, f"{field} must be a decimal string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_request(field, f"{field} must be a finite number")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if len(text) > 64 or "e" in text.lower():
        raise bad_request(field, f"{field} must be a plain decimal such as \"152.5\"")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise bad_request(field, f"{field} {value!r} is not a number") from None
    if not number.is_finite() or number <= 0:
        raise bad_request(field, f"{field} must be greater than zero")
    return Fraction(number)


def min_out_for_limit(amount_in: int, dec_in: int, dec_out: int, limit: Fraction) -> int:
    """Least output (tokenOut base units) at `limit` tokenOut per tokenIn, rounded up."""
    exact = Fraction(amount_in) * limit * 10**dec_out / 10**dec_in
    return math.ceil(exact)


def min_out_for_max_price(amount_in: int, dec_in: int, dec_out: int, max_price: Fraction) -> int:
    """Least output so that the price paid (tokenIn per tokenOut) stays at or below `max_price`."""
    exact = Fraction(amount_in) * 10**dec_out / (max_price * 10**dec_in)
    return math.ceil(exact)


def parse_expiry(field: str, value: object, now_ms: int) -> int:
    """An ISO-8601 time with a zone, or epoch milliseconds; must be in the future."""
    if isinstance(value, bool):
        raise bad_request(field, f"{field} must be an ISO-8601 time or epoch milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(field, f"{field} {value!r} is not an ISO-8601 time such as 2026-12-01T12:00:00Z") from None
        if moment.tzinfo is None:
            raise bad_request(field, f"{field} needs a time zone (for example a trailing Z for UTC)")
        ms = int(moment.timestamp() * 1000)
    else:
        raise bad_request(field, f"{field} must be an ISO-8601 time or epoch milliseconds")
    if ms <= now_ms:
        raise bad_request(field, f"{field} is in the past")
    if ms > MAX_EXPIRY_MS:
        raise bad_request(field, f"{field} is after 9999-12-31T23:59:59.999Z")
    return ms
