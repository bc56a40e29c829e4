"""Prices and times in an order body: exact decimals and absolute expiries."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from fractions import Fraction

from services.gateway.errors import bad_request, clip
from shared.retention import MAX_RESTING_MS

MAX_OUTPUT = 2**64 - 1
#: The furthest ahead an order may expire: the longest any order may rest, so that its
#: events are still in the log when it ends (`shared.retention`).
MAX_EXPIRY_MS = MAX_RESTING_MS

# ASCII digits only: `Decimal` also takes other scripts' digits and underscores.
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_price(field: str, value: object) -> Fraction:
    """A positive decimal price (string or number) as an exact fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(field, f"{field} must be a decimal string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_request(field, f"{field} must be a finite number")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if len(text) > 64 or not _PLAIN_DECIMAL.fullmatch(text.removeprefix("-")):
        raise bad_request(field, f"{field} {clip(value)} must be a plain decimal such as \"152.5\"")
    number = Decimal(text)
    if number <= 0:
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
    """An ISO-8601 time with a zone, or epoch milliseconds; in the future, within `MAX_EXPIRY_MS`."""
    if isinstance(value, bool):
        raise bad_request(field, f"{field} must be an ISO-8601 time or epoch milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        ms = _iso_ms(field, value)
    else:
        raise bad_request(field, f"{field} must be an ISO-8601 time or epoch milliseconds")
    if ms <= now_ms:
        raise bad_request(field, f"{field} is in the past")
    if ms > now_ms + MAX_EXPIRY_MS:
        raise bad_request(field, f"{field} is more than {MAX_EXPIRY_MS // 86_400_000} days ahead")
    return ms


def _iso_ms(field: str, text: str) -> int:
    example = "an ISO-8601 time such as 2026-12-01T12:00:00Z"
    if len(text) > 40 or not text.isascii():
        raise bad_request(field, f"{field} {clip(text)} is not {example}")
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(field, f"{field} {clip(text)} is not {example}") from None
    if moment.tzinfo is None:
        raise bad_request(field, f"{field} needs a time zone (for example a trailing Z for UTC)")
    # Exact integer arithmetic: no float rounding, and no overflow near the calendar's ends.
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)
