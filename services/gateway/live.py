"""Replay-then-live order streams with no gap and no duplicate at the seam.

A gateway replica holds one core NATS subscription per watched order, on the subject
where the stream republishes what it stored (so a rejected append is never seen), and
fans each event out in process to every client watching that order. No JetStream
consumer is created per client.

The seam: subscribe first (and flush, so the server has the interest), then read the
log. Anything stored after the read arrives on the subscription; anything in both is
dropped by its per-order `seq`. A live event that skips ahead (a core message lost to a
slow connection) makes the watcher read the missing events from the log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import events as ev
from shared.eventlog import EventLog

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    subscription: Subscription | None = None
    queues: set[asyncio.Queue] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub:
    def __init__(self, nc: Client, log_: EventLog):
        self._nc = nc
        self._log = log_
        self._watches: dict[str, _Watch] = {}

    @property
    def watched_orders(self) -> int:
        return len(self._watches)

    async def _join(self, order_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        watch = self._watches.get(order_id)
        if watch is None:
            watch = self._watches[order_id] = _Watch()
            watch.queues.add(queue)
            try:
                subject = self._log.topology.live_subject(order_id)
                watch.subscription = await self._nc.subscribe(subject, cb=self._fan_out(watch))
                await self._nc.flush()
            finally:
                watch.ready.set()
        else:
            watch.queues.add(queue)
            await watch.ready.wait()
        return queue

    async def _leave(self, order_id: str, queue: asyncio.Queue) -> None:
        watch = self._watches.get(order_id)
        if watch is None:
            return
        watch.queues.discard(queue)
        if not watch.queues:
            del self._watches[order_id]
            if watch.subscription is not None:
                try:
                    await watch.subscription.unsubscribe()
                except Exception:  # connection closing: nothing left to release
                    pass

    @staticmethod
    def _fan_out(watch: _Watch):
        async def deliver(msg: Msg) -> None:
            try:
                event = ev.decode(msg.data)
            except Exception:
                log.exception("undecodable live event on %s", msg.subject)
                return
            for queue in tuple(watch.queues):
                queue.put_nowait(event)

        return deliver

    async def watch(self, order_id: str, *, after_seq: int = 0) -> AsyncIterator[ev.OrderEvent | None]:
        """Every event of the order with seq > after_seq, in order, once each.

        Yields `None` once, after the replay, to mark the switch to live events.
        """
        queue = await self._join(order_id)
        try:
            last = after_seq
            for stored in await self._log.read(order_id):
                if stored.event.seq > last:
                    last = stored.event.seq
                    yield stored.event
            yield None
            while True:
                event: ev.OrderEvent = await queue.get()
                if event.seq <= last:
                    continue
                if event.seq > last + 1:
                    for stored in await self._log.read(order_id):
                        if last < stored.event.seq < event.seq:
                            last = stored.event.seq
                            yield stored.event
                last = event.seq
                yield event
        finally:
            await self._leave(order_id, queue)
