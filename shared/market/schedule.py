"""A launch schedule written as one setting, e.g. ``SIM_LAUNCHES="PUMP-USDC@+60s:0.002:50000,MEW-SOL@+120s"``.

Items are separated by commas; each is ``PAIR@WHEN[:PRICE[:DEPTH[:VENUES]]]``:

* ``PAIR``: ``BASE-QUOTE`` in any case, e.g. ``PUMP-USDC``.
* ``WHEN``: ``+<n><unit>`` after ``now_slot`` with unit ``ms``, ``s``, ``m``, ``h`` or
  ``slots`` (``+60s``, ``+1.5m``, ``+150slots``; a time rounds up to a whole slot),
  ``now``, or an absolute slot number (``70000000``).
* ``PRICE``: quote tokens per base token; ``DEPTH``: quote tokens each venue holds.
  Empty or missing: from `REFERENCE_USD` (and $50,000 of depth).
* ``VENUES``: ``raydium-cpmm``, ``meteora-dlmm``, ``raydium``, ``meteora`` or ``both``,
  several joined by ``/``; default ``raydium-cpmm``.

A relative time is relative to the process that parses it: replicas started at
different moments compute different slots for the same item, and the launch log keeps
whichever is published first (see `shared.launchlog`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Iterable

from shared.market.config import DEFAULT_CONFIG, PairSpec
from shared.market.launches import LaunchError, PoolLaunch, listed_pair, new_launch
from shared.market.pools import VENUE_CPMM

__all__ = ["ScheduleError", "parse_schedule", "parse_when"]

_RELATIVE = re.compile(r"\+(?P<amount>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h|slots?)")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}
_WHEN_HELP = "+<n>ms, +<n>s, +<n>m, +<n>h, +<n>slots, now, or an absolute slot number"


class ScheduleError(LaunchError):
    """A launch schedule that cannot be parsed; the message names the item and what is wrong."""


def parse_schedule(
    text: str, now_slot: int, slot_ms: int, *, listed: Iterable[PairSpec] = DEFAULT_CONFIG.pairs
) -> tuple[PoolLaunch, ...]:
    """Parse a schedule into launches, in the order written.

    ``now_slot`` and ``slot_ms`` turn relative times into slots. ``listed`` are the
    pairs the market has at genesis; launching one of them is an error, as is naming
    one pair twice. Raises `ScheduleError`.
    """
    if slot_ms <= 0:
        raise ValueError(f"slot_ms must be positive, not {slot_ms}")
    if not text.strip():
        return ()
    genesis = tuple(listed)
    launches: list[PoolLaunch] = []
    for index, item in enumerate(text.split(","), start=1):
        try:
            launch = _parse_item(item.strip(), now_slot, slot_ms)
            earlier = next((other for other in launches if other.tokens == launch.tokens), None)
            if earlier is not None:
                raise LaunchError(f"{earlier.pair_id} is already scheduled")
            if (taken := listed_pair(launch, genesis)) is not None:
                raise LaunchError(f"{taken.pair_id} has pools from genesis; only a new pair can launch")
        except LaunchError as exc:
            raise ScheduleError(f"launch schedule item {index} ({item.strip()!r}): {exc}") from None
        launches.append(launch)
    return tuple(launches)


def _parse_item(item: str, now_slot: int, slot_ms: int) -> PoolLaunch:
    if not item:
        raise LaunchError("empty item; write PAIR@WHEN[:PRICE[:DEPTH[:VENUES]]]")
    pair, at, rest = item.partition("@")
    if not at:
        raise LaunchError("missing '@WHEN'; write PAIR@WHEN[:PRICE[:DEPTH[:VENUES]]], e.g. PUMP-USDC@+60s")
    fields = rest.split(":")
    if len(fields) > 4:
        raise LaunchError("too many ':' fields; write PAIR@WHEN[:PRICE[:DEPTH[:VENUES]]]")
    when, price, depth, venues = (fields + [""] * 4)[:4]
    return new_launch(
        pair,
        listed_at_slot=parse_when(when.strip(), now_slot, slot_ms),
        price=price.strip() or None,
        depth=depth.strip() or None,
        venues=venues.strip() or VENUE_CPMM,
    )


def parse_when(when: str, now_slot: int, slot_ms: int) -> int:
    """The slot ``when`` names: ``+60s``, ``+150slots``, ``now`` or an absolute slot; raises `LaunchError`."""
    if when == "now":
        return now_slot
    if re.fullmatch(r"[0-9]+", when):
        return int(when)
    match = _RELATIVE.fullmatch(when)
    if match is None:
        raise LaunchError(f"time {when!r} is not one of: {_WHEN_HELP}")
    amount, unit = Fraction(match["amount"]), match["unit"]
    if unit.startswith("slot"):
        if amount.denominator != 1:
            raise LaunchError(f"time {when!r}: a number of slots must be whole")
        return now_slot + int(amount)
    slots = amount * _UNIT_MS[unit] / slot_ms
    return now_slot + -(-slots.numerator // slots.denominator)
