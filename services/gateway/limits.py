"""Per-key request rates that hold across gateway replicas, and per-key stream slots.

Rates are counted in fixed windows by the broker, not by a replica. A replica leases
slots of a key's window from the counter subject `ratelimit.<keyId>.<kind>.<window>` of
a JetStream counter stream (ADR-49): adding `n` returns the new total `v` across every
replica, so the slots `v-n+1 .. v` are this replica's alone, and only slots up to the
limit are ever admitted. Whatever the spread over replicas, a key never gets more than its
limit in a window. The lease starts at one slot and doubles while the key keeps using its
slots (up to a sixteenth of the limit), so a busy key costs a round trip per many
requests and a quiet one wastes little; slots a replica leased and did not use are lost
with the window, the price of not asking the broker on every request. A key past its
limit is refused without asking the broker again until the window turns.

When the broker cannot answer in time the replica counts alone, so a key keeps its limit
per replica while NATS is away.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from nats.js import JetStreamContext

from shared.topology import Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window ends (at least 1)
    window_s: int

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={self.window_s}",
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_s)
        return out


@dataclass(slots=True)
class _Lease:
    """One replica's slots of one key's window."""

    window: int
    chunk: int  # slots to lease next time
    next: int = 1  # the next slot to hand out
    end: int = 0  # the last leased slot that is within the limit
    total: int = 0  # the window's count across replicas, as of the last lease
    leasing: asyncio.Future | None = None


class RateLimiter:
    def __init__(
        self,
        js: JetStreamContext,
        topology: Topology,
        *,
        window_s: int = 1,
        timeout: float = 0.5,
        clock: Callable[[], float] = time.time,
    ):
        self._js = js
        self._topology = topology
        self._window_s = max(1, window_s)
        self._timeout = timeout
        self._clock = clock
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._newest_window = -1
        self._local: dict[tuple[str, str, int], int] = defaultdict(int)
        self._local_window = -1

    async def hit(self, key_id: str, kind: str, limit: int) -> Decision:
        """Count one request of `kind` for the key and decide whether it may pass."""
        now = self._clock()
        window = int(now // self._window_s)
        if window > self._newest_window:
            self.forget_before(window - 1)
            self._newest_window = window
        try:
            slot, left = await self._take(key_id, kind, window, limit)
        except Exception as exc:  # broker away: count on this replica alone
            if window != self._local_window:  # once a window, not once a request
                log.warning("rate-limit counter unavailable (%r); counting on this replica", exc)
            slot = self._count_locally(key_id, kind, window)
            left = max(0, limit - slot)
        return Decision(
            allowed=slot <= limit,
            limit=limit,
            remaining=left,
            reset_s=max(1, math.ceil((window + 1) * self._window_s - now)),
            window_s=self._window_s,
        )

    async def _take(self, key_id: str, kind: str, window: int, limit: int) -> tuple[int, int]:
        """This request's slot in the window (over `limit`: refused) and the slots left."""
        key = (key_id, kind)
        while True:
            lease = self._leases.get(key)
            if lease is None or lease.window < window:
                # A new window starts from half the last lease: a key that went quiet
                # should not hold many slots it will not use.
                chunk = max(1, lease.chunk // 2) if lease is not None else 1
                lease = self._leases[key] = _Lease(window=window, chunk=chunk)
            elif lease.window > window:  # begun as the window turned: count it in the new one
                window = lease.window
            if lease.next <= lease.end:
                slot = lease.next
                lease.next += 1
                return slot, max(0, limit - lease.total) + (lease.end - slot)
            if lease.total >= limit:
                return limit + 1, 0  # spent across the replicas: no need to ask again
            if lease.leasing is not None:
                await asyncio.shield(lease.leasing)
                continue
            lease.leasing = asyncio.get_running_loop().create_future()
            try:
                chunk = min(lease.chunk, max(1, limit // 16))
                total = await self._add(key_id, kind, window, chunk)
                lease.next, lease.end, lease.total = total - chunk + 1, min(total, limit), total
                lease.chunk = chunk * 2
            finally:
                lease.leasing.set_result(None)
                lease.leasing = None

    async def _add(self, key_id: str, kind: str, window: int, n: int) -> int:
        subject = self._topology.ratelimit_subject(key_id, kind, window)
        # No Nats-Expected-Stream header: the server refuses an increment that carries one.
        ack = await self._js.publish(subject, b"", headers={"Nats-Incr": str(n)}, timeout=self._timeout)
        return int(ack.val or 0)

    def _count_locally(self, key_id: str, kind: str, window: int) -> int:
        if window != self._local_window:
            self._local.clear()
            self._local_window = window
        self._local[(key_id, kind, window)] += 1
        return self._local[(key_id, kind, window)]

    def forget_before(self, window: int) -> None:
        """Drop the leases of windows before `window` (keys that went quiet)."""
        for key in [k for k, lease in self._leases.items() if lease.window < window and lease.leasing is None]:
            del self._leases[key]


class StreamSlots:
    """WebSocket streams open per key on this replica, capped."""

    def __init__(self) -> None:
        self._open: dict[str, int] = defaultdict(int)

    def take(self, key_id: str, cap: int) -> bool:
        if self._open[key_id] >= cap:
            return False
        self._open[key_id] += 1
        return True

    def give_back(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]
