"""Resting orders: the book every router replica keeps, rebuilt from the log.

Each replica follows the order stream with its own follower (`shared.follow`), so after
any restart its book holds exactly the orders the log says are open: nothing is re-armed
from memory. To re-arm in time proportional to the open orders rather than to all
history, a replica saves the fold (`book_state`) to the object store `BOOK` now and
then, and at start folds on from the latest snapshot, reading only the events stored
after it; it replays from the first message when there is none, or none it may use
(`book_state.usable`). The server sends only the event types that change the book
(`book_state.WATCHED`). Each order keeps the trace context of its acceptance, so its
firing continues its trace; a cancel that takes an order out is a span of that trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from services.router import book_state
from services.router.book import LimitBook
from services.router.book_state import BookFold
from shared import events as ev
from shared import metrics, tracing
from shared.clock import Clock
from shared.follow import Follower
from shared.setup import SetupMissing
from shared.topology import Topology

log = logging.getLogger(__name__)

#: One read of the snapshot gives up after this: a read whose chunks a rewrite purged
#: meanwhile never ends (the object store waits for them), so it is read again.
READ_TIMEOUT_S = 5.0


async def read_snapshot(store: ObjectStore, *, tries: int = 3) -> book_state.BookSnapshot | None:
    """The latest book snapshot, None when there is none; a read that hangs is tried again."""
    for attempt in range(1, tries + 1):
        try:
            result = await asyncio.wait_for(store.get(SNAPSHOT_NAME), READ_TIMEOUT_S)
        except nats.js.errors.ObjectNotFoundError:
            return None
        except asyncio.TimeoutError:
            if attempt < tries:
                continue
            raise
        return book_state.decode(result.data or b"")
    return None

SNAPSHOT_NAME = "book"
REFRESH_S = 3600.0


class BookFeed:
    """Folds the order stream into a `LimitBook`, from a snapshot when there is one."""

    def __init__(self, js: JetStreamContext, topology: Topology, book: LimitBook, clock: Clock,
                 *, snapshot_every_s: float = 30.0):
        """`snapshot_every_s` 0 neither reads nor writes snapshots."""
        self._js = js
        self._topology = topology
        self._clock = clock
        self._fold = BookFold(book)
        self._every = snapshot_every_s
        self._store: ObjectStore | None = None
        self._caught_up = asyncio.Event()
        self._tail = 0
        self._created = ""
        self._saved_seq = 0
        self._saved_at = time.monotonic()
        self._started = 0.0
        self._source = "log"
        self._follower: Follower | None = None

    @property
    def book(self) -> LimitBook:
        return self._fold.book

    @property
    def fold(self) -> BookFold:
        return self._fold

    @property
    def caught_up(self) -> asyncio.Event:
        """Set once the feed has read everything the stream held when it started."""
        return self._caught_up

    async def start(self) -> None:
        self._started = time.perf_counter()
        info = await self._js.stream_info(self._topology.orders_stream)
        self._tail = info.state.last_seq
        self._created = info.created.isoformat() if info.created else ""
        start_seq = 1
        if self._every > 0:
            try:
                self._store = await self._js.object_store(self._topology.book_bucket)
            except nats.js.errors.NotFoundError:
                raise SetupMissing(f"object store {self._topology.book_bucket}") from None
            snapshot = await self._load()
            if snapshot is not None and book_state.usable(
                snapshot, stream_created=self._created, first_seq=info.state.first_seq, last_seq=self._tail
            ):
                self._fold.restore(snapshot)
                self._saved_seq = snapshot.stream_seq
                self._source = "snapshot"
                start_seq = snapshot.stream_seq + 1
            elif snapshot is not None:
                log.info("book snapshot not usable; replaying the whole log",
                         extra={"snapshotSeq": snapshot.stream_seq, "firstSeq": info.state.first_seq})
        if self._fold.stream_seq >= self._tail:
            self._armed(self._fold.stream_seq)
        self._follower = Follower(
            self._js, self._topology.orders_stream, self._topology.event_filter(*sorted(book_state.WATCHED)),
            self._on_message, start_seq=start_seq, on_caught_up=lambda: self._armed(self._fold.stream_seq),
        )
        await self._follower.start()

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Save a snapshot every `snapshot_every_s` once armed, and report the oldest resting order."""
        period = self._every if self._every > 0 else 15.0
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            if stop.is_set() or not self._caught_up.is_set():
                continue
            orders = self.book.orders()
            oldest = min((o.accepted_at for o in orders), default=None)
            age = 0.0 if oldest is None else max(0.0, (self._clock.now_ms() - oldest) / 1000)
            metrics.bound(metrics.OLDEST_RESTING).set(age)
            # Saved when the log moved on, and hourly regardless: the bucket drops a snapshot a
            # day old, and a quiet log must not cost the next start a full replay.
            stale = time.monotonic() - self._saved_at > REFRESH_S
            if self._store is not None and (self._fold.stream_seq > self._saved_seq or stale):
                try:
                    await self.save()
                except Exception as exc:  # the next period tries again; until then the older one serves
                    log.warning("book snapshot not saved: %r", exc)

    async def save(self) -> int:
        """Write the fold as it stands now; returns the stream sequence it reflects."""
        if self._store is None:
            raise RuntimeError("this feed keeps no snapshots")
        snapshot = self._fold.snapshot(self._created)  # taken at once: no event is folded meanwhile
        await self._store.put(SNAPSHOT_NAME, book_state.encode(snapshot))
        self._saved_seq = max(self._saved_seq, snapshot.stream_seq)
        self._saved_at = time.monotonic()
        return snapshot.stream_seq

    async def _load(self) -> book_state.BookSnapshot | None:
        assert self._store is not None
        try:
            return await read_snapshot(self._store)
        except Exception as exc:  # unreadable, or rewritten under every read: the log has it all
            log.warning("book snapshot not read; replaying the whole log: %r", exc)
            return None

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            event = ev.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # parked by the consumers; not ours to stop on
            log.error("undecodable event left out of the book", extra={"streamSeq": seq, "error": str(exc)})
            self._fold.skip(seq)
        else:
            cancelled = self.book.get(event.order_id) if isinstance(event, ev.OrderCancelled) else None
            if cancelled is not None and self._caught_up.is_set():
                # A cancel taking a resting order out (not one replayed at start): a span of the
                # order's trace, child of the cancel.
                with tracing.span("remove resting order", msg.headers,
                                  **{"order.id": cancelled.order_id, "order.type": cancelled.kind}):
                    self._fold.apply(event, seq)
            else:
                self._fold.apply(event, seq, tracing.carried(msg.headers))

    def _armed(self, seq: int) -> None:
        if self._caught_up.is_set():
            return
        seconds = time.perf_counter() - self._started
        self._caught_up.set()
        metrics.bound(metrics.BOOK_REARM, self._source).set(seconds)
        log.info("book armed", extra={"resting": len(self.book), "streamSeq": seq, "from": self._source,
                                      "seconds": round(seconds, 3)})
