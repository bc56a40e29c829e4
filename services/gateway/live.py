"""Replay-then-live order streams with no gap and no duplicate at the seam.

A gateway replica holds one core NATS subscription per watched order, on the subject
where the stream republishes what it stored (so a rejected append is never seen), and
fans each event out in process to every client watching that order. No JetStream
consumer is created per client.

The seam: subscribe first, then read the log. The subscription and the read's request
leave on the one connection in that order and the server handles them in that order, so
its interest is in place before the read is answered, without a round trip to confirm
it. (In a cluster the interest reaches the other servers a moment later, confirmed or
not; a message lost in that moment is one for the checks below.) Anything stored after
the read arrives on the subscription; anything in both is dropped by its per-order `seq`.
A live event that skips ahead (a core message lost) makes the watcher read the missing
events from the log, and a replay that misses an event the hub knew stored before it
began (a replica behind the leader answered) is read again until the log shows it.

Core messages carry no promise, and a lost one that nothing follows (the terminal event
above all) would leave a stream waiting forever. Between a connected client and server
a message is lost only when the connection breaks or a subscription overflows, so the
hub checks an order against the log (one read per order, fanned out to its watchers):

- after a reconnect, every watched order once (`recover_all`);
- after a slow-consumer error, the order of that subscription (`on_error`);
- and, as a safety net for what neither reports, each order after `idle_check_s` of
  silence, then after twice as long each quiet check, up to `idle_check_max_s`; any event
  heard starts the backoff over. A lost live message costs at most that long, and a
  quiet order one direct get per period, however many clients watch it. Checks queue
  for a gate of `_CHECKS_AT_ONCE`, so thousands due together never crowd out replays.

An idle watcher does no periodic work: it waits for the hub to hand it something.

The registry holds an order only while some client watches it: the entry and its
subscription go with the last watcher, whichever way it ends (terminal event, client
gone, the wait for an unknown order over, a failed subscribe).
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import events as ev
from shared import metrics
from shared.eventlog import EventLog, StoredEvent, stream_seq_of

log = logging.getLogger(__name__)

#: Checks of orders against the log in flight at once: after a reconnect, or when many
#: quiet orders come due together, they queue rather than crowd out the streams' replays.
_CHECKS_AT_ONCE = 32
#: Undelivered bytes a subscription may hold before nats-py drops what comes (a slow
#: consumer, reported to `on_error`). An order's events are a few KB in all.
PENDING_BYTES_LIMIT = 1 << 20


class _Watcher:
    """One client's inbox: events handed over by the hub, and the wait for the next one."""

    __slots__ = ("pending", "waiter")

    def __init__(self) -> None:
        self.pending: list[StoredEvent] = []
        self.waiter: asyncio.Future | None = None

    def put(self, stored: StoredEvent) -> None:
        self.pending.append(stored)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self) -> list[StoredEvent]:
        """Everything handed over since the last take (waits for at least one event)."""
        while not self.pending:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        taken, self.pending = self.pending, []
        return taken


class _Watch:
    """One watched order: its subscription, its watchers, and what the hub knows of its log."""

    __slots__ = (
        "subscription", "watchers", "ready", "seq", "position", "quiet_s", "heard_at", "timer", "checking", "again",
    )

    def __init__(self, ready: asyncio.Future, quiet_s: float) -> None:
        self.subscription: Subscription | None = None
        self.watchers: set[_Watcher] = set()
        self.ready = ready  # done once the subscription is in place (or failed)
        self.seq = 0  # the highest seq of the order known stored (heard, read or replayed)
        self.position = 0  # its stream position
        self.quiet_s = quiet_s  # the wait before the next safety-net check
        self.heard_at = 0.0  # when the last live event came (loop time)
        self.timer: asyncio.TimerHandle | None = None
        self.checking = False
        self.again = False  # asked to check while a check ran: run once more after it

    def learn(self, stored: StoredEvent) -> bool:
        """Record an event known stored; True if it is news to the hub."""
        if stored.event.seq <= self.seq:
            return False
        self.seq, self.position = stored.event.seq, max(self.position, stored.stream_seq)
        return True


class LiveHub:
    def __init__(
        self,
        nc: Client,
        log_: EventLog,
        *,
        idle_check_s: float = 3.0,
        idle_check_max_s: float = 60.0,
        pending_bytes_limit: int = PENDING_BYTES_LIMIT,
    ):
        self._nc = nc
        self._pending_bytes_limit = pending_bytes_limit
        self._log = log_
        self._idle_check_s = idle_check_s
        self._idle_check_max_s = max(idle_check_s, idle_check_max_s)
        self._watches: dict[str, _Watch] = {}
        self._checks: set[asyncio.Task] = set()
        self._gate = asyncio.Semaphore(_CHECKS_AT_ONCE)
        self._gauge = metrics.LIVE_SUBSCRIPTIONS.labels(metrics.service(), "orders")
        self._recovered = metrics.LIVE_EVENTS_RECOVERED.labels(metrics.service())

    @property
    def watched_orders(self) -> int:
        return len(self._watches)

    # Connection events (wired to the NATS connection's callbacks by the composition root).

    async def recover_all(self) -> None:
        """After a reconnect: whatever was published while away is lost; check every order once."""
        orders = list(self._watches)
        if not orders:
            return
        log.info("reconnected: checking %d watched orders against the log", len(orders))
        for order_id in orders:
            self._spawn(self._check(order_id))

    async def on_error(self, exc: Exception) -> None:
        """A slow-consumer error drops messages of one subscription: check that order."""
        if not isinstance(exc, nats.errors.SlowConsumerError):
            return
        for order_id, watch in self._watches.items():
            if watch.subscription is not None and watch.subscription is exc.sub:
                self._spawn(self._check(order_id))
                return

    # Joining and leaving.

    async def _join(self, order_id: str) -> tuple[_Watch, _Watcher]:
        watcher = _Watcher()
        watch = self._watches.get(order_id)
        first = watch is None
        if watch is None:
            watch = self._watches[order_id] = _Watch(asyncio.get_running_loop().create_future(), self._idle_check_s)
            self._gauge.set(len(self._watches))
        watch.watchers.add(watcher)
        try:
            if first:
                try:
                    subject = self._log.topology.live_subject(order_id)
                    watch.subscription = await self._nc.subscribe(
                        subject, cb=self._fan_out(order_id, watch), pending_bytes_limit=self._pending_bytes_limit
                    )
                finally:
                    watch.ready.set_result(None)
                self._rearm(order_id, watch)
            else:
                await asyncio.shield(watch.ready)
        except BaseException:  # cancelled or failed: nothing of this watcher may stay behind
            await self._leave(order_id, watcher)
            raise
        return watch, watcher

    async def _leave(self, order_id: str, watcher: _Watcher) -> None:
        watch = self._watches.get(order_id)
        if watch is None:
            return
        watch.watchers.discard(watcher)
        if not watch.watchers:
            del self._watches[order_id]
            self._gauge.set(len(self._watches))
            if watch.timer is not None:
                watch.timer.cancel()
            if watch.subscription is not None:
                try:
                    await watch.subscription.unsubscribe()
                except Exception:  # connection closing: nothing left to release
                    pass

    # Live events and checks against the log.

    def _fan_out(self, order_id: str, watch: _Watch):
        async def deliver(msg: Msg) -> None:
            try:
                stored = StoredEvent(stream_seq=stream_seq_of(msg), event=ev.decode(msg.data))
            except Exception:
                log.exception("undecodable live event on %s", msg.subject)
                return
            watch.learn(stored)
            # The order moves: the safety net starts over, counted from now (the timer
            # that runs moves itself on when it comes due, rather than one timer per event).
            now = asyncio.get_running_loop().time()
            watch.quiet_s, watch.heard_at = self._idle_check_s, now
            if watch.timer is not None and watch.timer.when() > now + watch.quiet_s:  # after a long quiet
                self._rearm(order_id, watch)
            for watcher in tuple(watch.watchers):
                watcher.put(stored)

        return deliver

    def _rearm(self, order_id: str, watch: _Watch) -> None:
        if watch.timer is not None:
            watch.timer.cancel()
        watch.timer = asyncio.get_running_loop().call_later(watch.quiet_s, self._due, order_id, watch)

    def _due(self, order_id: str, watch: _Watch) -> None:
        loop = asyncio.get_running_loop()
        if self._watches.get(order_id) is not watch:
            return
        if (wait := watch.heard_at + watch.quiet_s - loop.time()) > 0:  # heard something meanwhile
            watch.timer = loop.call_later(wait, self._due, order_id, watch)
        else:
            watch.timer = None
            self._spawn(self._check(order_id, quiet=True))

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, order_id: str, *, quiet: bool = False) -> None:
        """Read the order's events after the last the hub knows and hand the news to its watchers."""
        watch = self._watches.get(order_id)
        if watch is None:
            return
        if watch.checking:
            watch.again = True
            return
        watch.checking = True
        try:
            while True:
                watch.again = False
                try:
                    async with self._gate:
                        stored = await self._log.read(order_id, from_stream_seq=watch.position + 1)
                except Exception as exc:  # NATS away: the reconnect or the next check tries again
                    log.debug("order %s not checked: %r", order_id, exc)
                    stored = []
                for found in stored:
                    if watch.learn(found):
                        self._recovered.inc()
                        for watcher in tuple(watch.watchers):
                            watcher.put(found)
                if not watch.again:
                    break
        finally:
            watch.checking = False
        if self._watches.get(order_id) is watch:
            if quiet:
                watch.quiet_s = min(watch.quiet_s * 2, self._idle_check_max_s)
            self._rearm(order_id, watch)

    async def watch(self, order_id: str, *, after_seq: int = 0) -> AsyncIterator[ev.OrderEvent | None]:
        """Every event of the order with seq > after_seq, in order, once each.

        Yields `None` once, after the replay, to mark the switch to live events.
        """
        watch, watcher = await self._join(order_id)
        try:
            last = after_seq  # the seq of the last event yielded (or skipped as seen before)
            position = 0  # the stream position of the last event read or heard
            known = watch.seq  # stored before this read began (what is stored after, the subscription hears)
            replay = await self._log.read(order_id)
            if known > (replay[-1].event.seq if replay else 0):
                # A replica behind the leader answered: read until the log shows what it holds.
                replay = list((await self._log.load(order_id, through_seq=known)).events)
            for stored in replay:
                watch.learn(stored)
                position = stored.stream_seq
                if stored.event.seq > last:
                    last = stored.event.seq
                    yield stored.event
            del replay
            yield None
            while True:
                for heard in await watcher.take():
                    if heard.event.seq <= last:
                        position = max(position, heard.stream_seq)
                        continue
                    if heard.event.seq > last + 1:
                        # A live event skipped ahead: read what the log holds before it.
                        for stored in await self._log.read(order_id, from_stream_seq=position + 1):
                            if stored.event.seq >= heard.event.seq:
                                break
                            position = stored.stream_seq
                            if stored.event.seq > last:
                                last = stored.event.seq
                                self._recovered.inc()
                                yield stored.event
                    last, position = heard.event.seq, heard.stream_seq
                    yield heard.event
        finally:
            await self._leave(order_id, watcher)
