"""Time-in-force rules for limit orders: when an order stops resting, and what IOC does.

Pure functions of their arguments; the clock is the caller's `now_ms`.
"""

from __future__ import annotations

from typing import Literal

TIME_IN_FORCE: tuple[str, ...] = ("GTC", "GTD", "IOC")

IocOutcome = Literal["execute", "expire"]


def expiry_for(time_in_force: str | None, expires_at: int | None, now_ms: int) -> int | None:
    """The time (ms since epoch) an order stops resting, or None if it rests until cancelled.

    - GTC: rests until cancelled; `expires_at` must be absent.
    - GTD: rests until `expires_at`, which is required and must be later than `now_ms`.
    - IOC: never rests; expires at `now_ms` (due at once unless it executes on arrival);
      `expires_at` must be absent.
    - None (sniper orders, which have no time in force): `expires_at` if given, which must
      then be later than `now_ms`; otherwise None.

    Raises ValueError with a message fit for the client otherwise.
    """
    if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, int)):
        raise ValueError(f"expiresAt must be an integer number of milliseconds since the epoch, not {expires_at!r}")
    if time_in_force is None:
        if expires_at is not None:
            _require_future(expires_at, now_ms)
        return expires_at
    if time_in_force == "GTC":
        if expires_at is not None:
            raise ValueError("timeInForce GTC rests until cancelled; expiresAt is only allowed with GTD")
        return None
    if time_in_force == "GTD":
        if expires_at is None:
            raise ValueError("timeInForce GTD needs expiresAt (ms since epoch)")
        _require_future(expires_at, now_ms)
        return expires_at
    if time_in_force == "IOC":
        if expires_at is not None:
            raise ValueError("timeInForce IOC executes on arrival or expires; expiresAt is only allowed with GTD")
        return now_ms
    raise ValueError(f"timeInForce {time_in_force!r} is not one of {', '.join(TIME_IN_FORCE)}")


def ioc_outcome(min_out: int, exact_out: int | None) -> IocOutcome:
    """What an immediate-or-cancel order does given the exact output for its full size.

    `exact_out` None means no venue can fill it at all (no route, or not fillable).
    """
    return "execute" if exact_out is not None and exact_out >= min_out else "expire"


def _require_future(expires_at: int, now_ms: int) -> None:
    if expires_at <= now_ms:
        raise ValueError(f"expiresAt {expires_at} is not in the future (now {now_ms})")
