"""Replay-then-live order streams with no gap and no duplicate at the seam.

A gateway replica holds one core NATS subscription per watched order, on the subject
where the stream republishes what it stored (so a rejected append is never seen), and
fans each event out in process to every client watching that order. No JetStream
consumer is created per client.

The seam: subscribe first (and flush, so the server has the interest), then read the
log. Anything stored after the read arrives on the subscription; anything in both is
dropped by its per-order `seq`. A live event that skips ahead (a core message lost to a
slow connection) makes the watcher read the missing events from the log.

Core messages carry no promise, and a lost one that nothing follows (the terminal event
above all) would leave a stream waiting forever. So a watcher that hears nothing for
`idle_check_s` reads the log from the last position it knows: a lost live message costs
at most that long, and a quiet order one direct get (answered "nothing") per period.

The registry holds an order only while some client watches it: the entry and its
subscription go with the last watcher, whichever way it ends (terminal event, client
gone, the wait for an unknown order over, a failed subscribe).
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
from shared import metrics
from shared.eventlog import EventLog, StoredEvent, stream_seq_of

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    subscription: Subscription | None = None
    queues: set[asyncio.Queue] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class LiveHub:
    def __init__(self, nc: Client, log_: EventLog, *, idle_check_s: float = 3.0):
        self._nc = nc
        self._log = log_
        self._idle_check_s = idle_check_s
        self._watches: dict[str, _Watch] = {}
        self._gauge = metrics.LIVE_SUBSCRIPTIONS.labels(metrics.service(), "orders")
        self._recovered = metrics.LIVE_EVENTS_RECOVERED.labels(metrics.service())

    @property
    def watched_orders(self) -> int:
        return len(self._watches)

    async def _join(self, order_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        watch = self._watches.get(order_id)
        first = watch is None
        if watch is None:
            watch = self._watches[order_id] = _Watch()
            self._gauge.set(len(self._watches))
        watch.queues.add(queue)
        try:
            if first:
                try:
                    subject = self._log.topology.live_subject(order_id)
                    watch.subscription = await self._nc.subscribe(subject, cb=self._fan_out(watch))
                    await self._nc.flush()
                finally:
                    watch.ready.set()
            else:
                await watch.ready.wait()
        except BaseException:  # cancelled or failed: nothing of this watcher may stay behind
            await self._leave(order_id, queue)
            raise
        return queue

    async def _leave(self, order_id: str, queue: asyncio.Queue) -> None:
        watch = self._watches.get(order_id)
        if watch is None:
            return
        watch.queues.discard(queue)
        if not watch.queues:
            del self._watches[order_id]
            self._gauge.set(len(self._watches))
            if watch.subscription is not None:
                try:
                    await watch.subscription.unsubscribe()
                except Exception:  # connection closing: nothing left to release
                    pass

    @staticmethod
    def _fan_out(watch: _Watch):
        async def deliver(msg: Msg) -> None:
            try:
                stored = StoredEvent(stream_seq=stream_seq_of(msg), event=ev.decode(msg.data))
            except Exception:
                log.exception("undecodable live event on %s", msg.subject)
                return
            for queue in tuple(watch.queues):
                queue.put_nowait(stored)

        return deliver

    async def _next(self, queue: asyncio.Queue) -> StoredEvent | None:
        """The next event heard, or None after `idle_check_s` of silence."""
        if not queue.empty():
            return queue.get_nowait()
        try:
            return await asyncio.wait_for(queue.get(), self._idle_check_s)
        except asyncio.TimeoutError:
            return None

    async def watch(self, order_id: str, *, after_seq: int = 0) -> AsyncIterator[ev.OrderEvent | None]:
        """Every event of the order with seq > after_seq, in order, once each.

        Yields `None` once, after the replay, to mark the switch to live events.
        """
        queue = await self._join(order_id)
        try:
            last = after_seq  # the seq of the last event yielded (or skipped as seen before)
            position = 0  # the stream position of the last event read or heard
            for stored in await self._log.read(order_id):
                position = stored.stream_seq
                if stored.event.seq > last:
                    last = stored.event.seq
                    yield stored.event
            yield None
            while True:
                heard = await self._next(queue)
                if heard is not None and heard.event.seq <= last:
                    position = max(position, heard.stream_seq)
                    continue
                if heard is None or heard.event.seq > last + 1:
                    # Nothing heard for a while, or a live event skipped ahead: read what the
                    # log holds after the last known position.
                    below = heard.event.seq if heard is not None else None
                    for stored in await self._log.read(order_id, from_stream_seq=position + 1):
                        if below is not None and stored.event.seq >= below:
                            break
                        position = stored.stream_seq
                        if stored.event.seq > last:
                            last = stored.event.seq
                            self._recovered.inc()
                            yield stored.event
                    if heard is None:
                        continue
                last, position = heard.event.seq, heard.stream_seq
                yield heard.event
        finally:
            await self._leave(order_id, queue)
