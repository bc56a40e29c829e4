"""The reconciler: every order that is neither finished nor resting has an owner that moves it on.

The read model knows each order's status and when its last event happened. An order in
pending or routing (the router's) or building or submitted (the executor's) whose last
event is older than the stall deadline has lost its way: its owner died between two
steps, or acked a message it could not act on. The reconciler sends that owner a resume
nudge (`shared.resume`), and the owner takes the order up again from the log.

Nudges are deduplicated by the order's last seq (within the resume stream's two-minute
window, and the stream keeps at most one per order and role), so scanning the same
stalled order again adds nothing; a nudge to an owner that is merely waiting (a backoff,
a slow confirmation) costs one idempotent look at the log. The deadline is well above every
wait the executor makes on purpose (backoff, confirmation, a dropped transaction's
blockhash expiry), so such orders are rarely nudged at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Callable

import asyncpg
from nats.js import JetStreamContext

from services.projector.store import timestamp
from shared import metrics, resume, tracing
from shared.eventlog import EventLog
from shared.topology import Topology

log = logging.getLogger(__name__)

# Literal statuses, so the planner can use the partial index on exactly these rows.
_STALLED = (
    "select order_id, order_type, status, last_seq, updated_at from orders"
    " where status in (" + ", ".join(f"'{s}'" for s in resume.OWNER) + ")"
    " and updated_at < $1 order by updated_at limit $2"
)


class Reconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        topology: Topology,
        *,
        events: EventLog | None = None,
        interval_s: float = 5.0,
        stall_s: float = 30.0,
        limit: int = 1000,
        clock: Callable[[], float] = time.time,
    ):
        self._pool = pool
        self._js = js
        self._topology = topology
        self._events = events
        self._interval_s = interval_s
        for role in set(resume.OWNER.values()):  # each series exists at 0 before its first nudge
            metrics.bound(metrics.RESUME_NUDGES, role)
        self._stall_s = stall_s
        self._limit = limit
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Scan every interval until `stop`; a failed scan is logged and the next one tried."""
        while not stop.is_set():
            try:
                await self.scan()
            except Exception:
                log.warning("reconciler scan failed", exc_info=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)

    async def scan(self) -> Counter[str]:
        """Nudge the owner of every stalled order; returns the new nudges by role."""
        now_ms = int(self._clock() * 1000)
        deadline = timestamp(now_ms - int(self._stall_s * 1000))
        rows = await self._pool.fetch(_STALLED, deadline, self._limit)
        sent: Counter[str] = Counter()
        for row in rows:
            role = resume.OWNER[row["status"]]
            order_id, seq = row["order_id"], row["last_seq"]
            trace = await self._trace_of(order_id)
            if not await resume.nudge(self._js, self._topology, role, order_id, seq=seq, status=row["status"],
                                      trace=trace, order_type=row["order_type"]):
                continue  # already nudged at this seq
            sent[role] += 1
            metrics.bound(metrics.RESUME_NUDGES, role).inc()
            idle_s = now_ms / 1000 - row["updated_at"].timestamp()
            log.warning(
                "stalled order nudged",
                extra={"orderId": order_id, "status": row["status"], "seq": seq, "role": role,
                       "idleSeconds": round(idle_s, 1)},
            )
        return sent

    async def _trace_of(self, order_id: str) -> str:
        """The trace context of the order's last stored event, so its owner resumes it in its own trace."""
        if self._events is None or not tracing.enabled():
            return ""
        try:
            stored = await self._events.read(order_id)
        except Exception:  # the nudge matters more than its trace
            log.debug("no trace context for the nudge", exc_info=True, extra={"orderId": order_id})
            return ""
        return stored[-1].trace if stored else ""
