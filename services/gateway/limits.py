"""Per-key request rates that hold across gateway replicas, and per-key stream slots.

Rates are counted in fixed windows by the broker, not by a replica: each request adds one
to the counter subject `ratelimit.<keyId>.<kind>.<window>` of a JetStream counter stream
(ADR-49), whose acknowledgement carries the new total across every replica. One round
trip, no read-modify-write race, and the stream's age limit clears old windows. When the
broker cannot answer in time the replica counts alone, so a key keeps its limit per
replica while NATS is away.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from nats.js import JetStreamContext

from shared.topology import Topology

INCREMENT = {"Nats-Incr": "1"}
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
        self._local: dict[tuple[str, str, int], int] = defaultdict(int)
        self._local_window = -1

    async def hit(self, key_id: str, kind: str, limit: int) -> Decision:
        """Count one request of `kind` for the key and decide whether it may pass."""
        now = self._clock()
        window = int(now // self._window_s)
        try:
            count = await self._count(key_id, kind, window)
        except Exception as exc:  # broker away: count on this replica alone
            if window != self._local_window:  # once a window, not once a request
                log.warning("rate-limit counter unavailable (%r); counting on this replica", exc)
            count = self._count_locally(key_id, kind, window)
        reset = max(1, math.ceil((window + 1) * self._window_s - now))
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_s=reset,
            window_s=self._window_s,
        )

    async def _count(self, key_id: str, kind: str, window: int) -> int:
        subject = self._topology.ratelimit_subject(key_id, kind, window)
        # No Nats-Expected-Stream header: the server refuses an increment that carries one.
        ack = await self._js.publish(subject, b"", headers=dict(INCREMENT), timeout=self._timeout)
        return int(ack.val or 0)

    def _count_locally(self, key_id: str, kind: str, window: int) -> int:
        if window != self._local_window:
            self._local.clear()
            self._local_window = window
        self._local[(key_id, kind, window)] += 1
        return self._local[(key_id, kind, window)]


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
