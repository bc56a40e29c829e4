"""How long the order log keeps events, and the rule that keeps an open order whole.

Every service rebuilds an order by folding all of its events, so an order whose first
events left the log could no longer be decided on. The log's limits therefore follow one
rule: no order stays open longer than `MAX_RESTING_MS` (30 days) after it was accepted.
The gateway refuses an `expiresAt` further ahead than that, and the router expires every
resting order (GTC included) at the latest that long after its acceptance. The stream
keeps events for `ORDERS_MAX_AGE_DAYS`, which must exceed the resting limit by at least
`MIN_MARGIN_MS` (a day: time for the router to be down, or for an expiry to be retried,
before anything is lost; the `OpenOrderNearLogRetention` alert fires at the start of that
day).

The byte limit refuses new appends when full (`DiscardPolicy.NEW`) instead of dropping the
oldest events, which may belong to orders still resting: a full log stops intake (and is
alerted at 80 %) but never loses an open order. Finished orders stay readable after their
events leave the stream: the read model in PostgreSQL keeps them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Callable

from nats.aio.client import Client

from shared import metrics

DAY_MS = 86_400_000
#: The longest an order may rest (GTC, GTD or sniper) after it was accepted.
MAX_RESTING_MS = 30 * DAY_MS
#: The least the stream keeps events beyond the resting limit.
MIN_MARGIN_MS = DAY_MS

#: Defaults of the set-up step's `ORDERS_MAX_AGE_DAYS` and `ORDERS_MAX_BYTES`.
DEFAULT_MAX_AGE_DAYS = 32
DEFAULT_MAX_BYTES = 4 * 1024**3


def resting_deadline(accepted_at: int, expires_at: int | None) -> int:
    """When a resting order expires at the latest: its own expiry, capped by the resting limit."""
    cap = accepted_at + MAX_RESTING_MS
    return cap if expires_at is None else min(expires_at, cap)


def check_limits(max_age_days: float, max_bytes: int) -> None:
    """Refuse limits that could drop the events of an order still open."""
    if max_age_days * DAY_MS < MAX_RESTING_MS + MIN_MARGIN_MS:
        least = (MAX_RESTING_MS + MIN_MARGIN_MS) // DAY_MS
        raise ValueError(
            f"ORDERS_MAX_AGE_DAYS {max_age_days:g} is too short: orders rest up to "
            f"{MAX_RESTING_MS // DAY_MS} days, so the log must keep at least {least} days"
        )
    if max_bytes <= 0:
        raise ValueError(f"ORDERS_MAX_BYTES must be positive, not {max_bytes}")


class LogRoom:
    """Whether the order log has room for new orders, from the latest usage sample.

    A full log refuses every append, including the steps of orders already under way (a
    landed transaction's confirmation among them). New orders are therefore refused
    while the log is within `reserve` (a fraction of its byte limit) of full, so the
    orders already accepted always have room to finish.
    """

    def __init__(self, reserve: float):
        if not 0 <= reserve < 1:
            raise ValueError(f"the intake reserve must be within 0..1, not {reserve}")
        self.reserve = reserve
        self.used = 0.0
        self.limit = -1.0

    def update(self, usage: dict[str, float]) -> None:
        self.used, self.limit = usage["bytes"], usage["max_bytes"]

    @property
    def full(self) -> bool:
        return self.limit > 0 and self.used >= self.limit * (1 - self.reserve)


#: nats-server's error code for an append a stream refuses for lack of room (its byte or
#: message limit, with DiscardPolicy.NEW).
STREAM_FULL = 10077


def refused_for_room(exc: BaseException) -> bool:
    """Whether a failed append was refused because the stream is full."""
    return getattr(exc, "err_code", None) == STREAM_FULL


async def report_usage(
    nc: Client,
    stream: str,
    stop: asyncio.Event,
    *,
    interval: float = 15.0,
    observe: Callable[[dict[str, float]], None] | None = None,
) -> None:
    """Export a stream's size, its oldest message's age and its limits until `stop` is set.

    Reads the raw stream info: the age of the first message (`first_ts`) is not in the
    client's parsed form. `observe` gets every sample as well.
    """
    service = metrics.service()
    gauges = {
        "bytes": metrics.STREAM_BYTES.labels(service, stream),
        "messages": metrics.STREAM_MESSAGES.labels(service, stream),
        "age": metrics.STREAM_FIRST_AGE.labels(service, stream),
        "max_bytes": metrics.STREAM_MAX_BYTES.labels(service, stream),
        "max_age": metrics.STREAM_MAX_AGE.labels(service, stream),
    }
    while not stop.is_set():
        try:
            reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
            usage = stream_usage(json.loads(reply.data), time.time())
            for name, value in usage.items():
                gauges[name].set(value)
            if observe is not None:
                observe(usage)
        except Exception:  # a missed sample is not worth failing over
            pass
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


def stream_usage(info: dict, now: float) -> dict[str, float]:
    """The figures `report_usage` exports, from a raw stream info reply (limits -1 when none)."""
    if "error" in info:
        raise RuntimeError(f"stream info refused: {info['error']}")
    state, config = info["state"], info["config"]
    age = 0.0
    if state.get("messages") and state.get("first_ts", "").startswith(("1", "2")):
        age = max(0.0, now - _epoch(state["first_ts"]))
    max_age = config.get("max_age", 0) / 1e9
    return {
        "bytes": float(state.get("bytes", 0)),
        "messages": float(state.get("messages", 0)),
        "age": age,
        "max_bytes": float(config.get("max_bytes", -1)),
        "max_age": max_age if max_age > 0 else -1.0,
    }


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time with nanoseconds, as the server writes them."""
    head, _, rest = timestamp.rstrip("Z").partition(".")
    fraction = float(f"0.{rest.split('+')[0].split('-')[0] or 0}")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc)
    return base.timestamp() + fraction
