"""Query parameters, parsed strictly: ASCII digits only, bounded, named in the error."""

from __future__ import annotations

import re

from services.gateway.errors import ApiError, bad_request

# `str.isdigit` and `int` accept digits of every script (and superscripts, which `int`
# then refuses); a parameter is a short run of ASCII digits or it is refused.
_DIGITS = re.compile(r"[0-9]{1,18}")


def bounded_int(field: str, raw: str | None, *, default: int, low: int, high: int) -> int:
    """`raw` as an integer in [low, high]; `default` when absent; 400 naming `field` otherwise."""
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise bad_request(field, f"{field} must be an integer from {low} to {high}")
    return int(raw)


def error_message(exc: ApiError) -> dict:
    """An `ApiError` as the message a WebSocket sends before closing."""
    return {"type": "error", "error": exc.error, "field": exc.field, "detail": exc.detail}
