"""The serving projector: pull batches from a durable consumer, fold, write, ack.

Each batch: load the batch's orders, fold, then write events, orders, rejects and the
position in one statement (one transaction) under the projection lock, and only then ack.
The write moves an order only from the row its fold started from; an order another
writer moved in between (a replica, a rebuild, a refold) is loaded and folded again. A
crash before the ack redelivers the batch, which the fold skips per order, so the read
model is exactly-once over an at-least-once log. A batch that fails to write is retried as
it is (the messages are kept in progress meanwhile) rather than nak'd, so later events
never overtake it.

At start, a read model behind what the consumer has acked (a new or restored database
under an existing consumer) is rebuilt first: those events would never come again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.projector import store
from services.projector.fold import Projection, Reject, project
from services.projector.pull import Puller
from services.projector.rebuild import rebuild
from shared import events as ev
from shared import metrics, tracing
from shared.consumer import ConsumerSpec
from shared.setup import SETUP_STEP, require_consumer
from shared.eventlog import EventLog, stream_seq_of
from shared.resume import Resume
from shared.topology import Topology

log = logging.getLogger(__name__)

Item = tuple[int, ev.OrderEvent]


class Projector:
    """Folds the order stream into the read model of one schema."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        nc: Client,
        js: JetStreamContext,
        topology: Topology,
        schema: str,
        *,
        batch: int = 500,
        rebuild_batch: int = 2000,
        idle_check: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self._pool = pool
        self._nc = nc
        self._js = js
        self._topology = topology
        self._schema = schema
        self._rebuild_batch = rebuild_batch
        self._batch = batch
        self._clock = clock
        self._idle_check = idle_check  # seconds between backlog checks while idle
        self._log = EventLog(nc, js, topology)
        self._ack_wait = ConsumerSpec.ack_wait
        self.spec = ConsumerSpec(
            durable=topology.consumer("projector"),
            filter_subject=topology.orders_wildcard,
            max_ack_pending=max(2048, 2 * batch),
        )

    async def apply(self, batch: list[Item]) -> Projection:
        """Fold `batch` into the read model; safe to repeat."""
        with tracing.span("project batch", None, **{"batch.size": len(batch)}):
            async with self._pool.acquire() as conn:
                projection, recorded = await self._fold_and_write(conn, batch)
        for reject in recorded:
            log.error("event rejected by the state machine; skipped", extra=msgspec.to_builtins(reject))
        self._observe(len(batch), projection)
        return projection

    async def _fold_and_write(self, conn: asyncpg.Connection, batch: list[Item]) -> tuple[Projection, list[Reject]]:
        """Load, fold, write; the orders another writer moved in between are loaded and folded again."""
        current = await store.load_current(conn, {event.order_id for _, event in batch})
        projection = project(current, batch)
        if projection.gaps:
            batch = batch + await self._read_gaps(projection.gaps)
            projection = project(current, batch, final=True)
        written = await store.write(conn, self._schema, projection, current)
        if not written.stale:
            return projection, written.rejects
        log.info("orders moved by another writer; folding them again", extra={"orders": len(written.stale)})
        kept = project(current, [item for item in batch if item[1].order_id not in written.stale], final=True)
        moved = [item for item in batch if item[1].order_id in written.stale]
        again, recorded = await self._fold_and_write(conn, moved)
        return _combined(kept, again), written.rejects + recorded

    async def refold(self, order_id: str) -> Projection:
        """Fold one order again from the log into the read model (a resume nudge's answer).

        When the log holds the order from its first event, its rows are replaced by that
        fold; when the log has aged its beginning out, what the read model lacks is added.
        The projector's position is left alone: this is one order, not the stream.
        """
        try:
            stored = await self._log.read(order_id)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("order history undecodable; not folded again", extra={"orderId": order_id, "error": str(exc)})
            return Projection()
        items = [(s.stream_seq, s.event) for s in stored]
        async with self._pool.acquire() as conn, conn.transaction():
            await store.lock(conn, self._schema)
            whole = bool(items) and items[0][1].seq == 1
            current = {} if whole else await store.load_current(conn, {order_id})
            projection = project(current, items, final=True)
            projection.max_stream_seq = 0
            if whole:
                await store.forget(conn, order_id)
            recorded = await store.write_locked(conn, self._schema, projection, current)
        for reject in recorded:
            log.error("event rejected by the state machine; skipped", extra=msgspec.to_builtins(reject))
        log.info("order folded again from the log", extra={"orderId": order_id, "events": len(items)})
        return projection

    async def resume(self, nudge: Resume, _msg=None) -> None:
        """Consumer entry for a resume nudge."""
        await self.refold(nudge.order_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished first."""
        info = await require_consumer(self._js, self._topology.orders_stream, self.spec.durable)
        self._ack_wait = info.config.ack_wait or self.spec.ack_wait  # the set-up step's, not the default
        await self._rebuild_if_behind()
        puller = Puller(self._nc, self._topology.orders_stream, self.spec.durable)
        checked = time.monotonic()
        # The next batch is fetched and decoded while the current one is written.
        ahead = asyncio.create_task(self._fetch(puller))
        try:
            while True:
                try:
                    msgs, items = await ahead
                except nats.errors.ConnectionClosedError:
                    return
                except Exception:
                    log.exception("fetch failed")
                    msgs, items = [], []
                    await _sleep(1.0, stop)
                if stop.is_set():
                    await _nak(msgs)  # fetched but not started: hand back for redelivery now
                    return
                ahead = asyncio.create_task(self._fetch(puller))
                if items:
                    await self._handle(msgs, items, stop, ahead)
                    metrics.CONSUMER_PENDING.labels(metrics.service(), self.spec.durable).set(
                        msgs[-1].metadata.num_pending
                    )
                elif puller.last_status is not None or time.monotonic() - checked > self._idle_check:
                    # Idle, or the server said something unusual (503: no such consumer).
                    puller.last_status = None
                    checked = time.monotonic()
                    await self._check_consumer(stop)
        finally:
            with contextlib.suppress(Exception):
                msgs, _ = await ahead
                await _nak(msgs)
            await puller.close()

    async def _rebuild_if_behind(self) -> None:
        """Rebuild a read model that lacks events the consumer has acked already.

        That is a new or restored database under an existing consumer: the consumer would
        never deliver those events again, so only a rebuild can bring them back.
        """
        info = await self._js.consumer_info(self._topology.orders_stream, self.spec.durable)
        acked = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        async with self._pool.acquire() as conn:
            position = await store.position(conn) or 0
        if position < acked:
            log.warning(
                "read model behind its consumer; rebuilding it", extra={"position": position, "ackFloor": acked}
            )
            summary = await rebuild(self._pool, self._js, self._topology, self._schema, chunk=self._rebuild_batch)
            log.info(str(summary))

    async def _fetch(self, puller: Puller) -> tuple[list[Msg], list[Item]]:
        """The next batch, decoded; undecodable messages are terminated and left out."""
        msgs = await puller.fetch(self._batch, wait=1.0)
        kept: list[Msg] = []
        items: list[Item] = []
        for msg in msgs:
            try:
                items.append((stream_seq_of(msg), ev.decode(msg.data)))
                kept.append(msg)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("undecodable event terminated", extra={"subject": msg.subject, "error": str(exc)})
                metrics.EVENTS_HANDLED.labels(metrics.service(), "unknown", "error").inc()
                await msg.term()
        return kept, items

    async def _handle(self, msgs: list[Msg], items: list[Item], stop: asyncio.Event, ahead: asyncio.Task) -> None:
        heartbeat = asyncio.create_task(self._keep_alive(msgs, ahead))
        try:
            delay = 0.5
            while True:
                try:
                    await self.apply(items)
                    break
                except Exception:
                    log.exception("batch not applied; retrying", extra={"events": len(items)})
                    if await _sleep(delay, stop):
                        await _nak(msgs)
                        return
                    delay = min(delay * 2, 10.0)
        finally:
            heartbeat.cancel()
        for msg in msgs:
            await msg.ack()

    async def _read_gaps(self, gaps: dict[str, int]) -> list[Item]:
        """The events of each gapped order after the position the read model holds."""

        async def read(order_id: str, after: int) -> list[Item]:
            try:
                stored = await self._log.read(order_id, from_stream_seq=after + 1)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("order history undecodable", extra={"orderId": order_id, "error": str(exc)})
                return []
            return [(s.stream_seq, s.event) for s in stored]

        log.info("reading missing events from the log", extra={"orders": len(gaps)})
        found = await asyncio.gather(*(read(order_id, after) for order_id, after in gaps.items()))
        return [item for items in found for item in items]

    def _observe(self, size: int, projection: Projection) -> None:
        service = metrics.service()
        metrics.PROJECTOR_BATCH.labels(service).observe(size)
        if projection.newest_occurred_at is not None:
            metrics.PROJECTOR_LAG.labels(service).set(self._clock() - projection.newest_occurred_at / 1000)
        for (kind, outcome), count in projection.outcomes.items():
            metrics.EVENTS_HANDLED.labels(service, kind, outcome).inc(count)

    async def _check_consumer(self, stop: asyncio.Event) -> None:
        """Report the backlog; say so if the consumer was deleted (only the set-up step creates it)."""
        stream, durable = self._topology.orders_stream, self.spec.durable
        try:
            info = await self._js.consumer_info(stream, durable)
            metrics.CONSUMER_PENDING.labels(metrics.service(), durable).set(info.num_pending or 0)
            return
        except nats.js.errors.NotFoundError:
            # Pulls resume by themselves once the consumer is back.
            log.error(f"consumer missing; {SETUP_STEP}", extra={"consumer": durable})
        except Exception:
            log.warning("consumer info unavailable", exc_info=True)
        await _sleep(1.0, stop)

    async def _keep_alive(self, msgs: list[Msg], ahead: asyncio.Task) -> None:
        # A batch can wait on the lock (a rebuild) or retry: keep it, and the next batch
        # fetched meanwhile, from being redelivered (each delivery counts towards parking).
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            held = list(msgs)
            if ahead.done() and not ahead.cancelled() and ahead.exception() is None:
                held += ahead.result()[0]
            for msg in held:
                with contextlib.suppress(Exception):  # reconnecting: the next round may pass
                    await msg.in_progress()


def _combined(a: Projection, b: Projection) -> Projection:
    """One projection of two of different orders."""
    newest = [t for t in (a.newest_occurred_at, b.newest_occurred_at) if t is not None]
    return Projection(
        orders=a.orders | b.orders,
        events=a.events + b.events,
        rejects=a.rejects + b.rejects,
        outcomes=a.outcomes + b.outcomes,
        max_stream_seq=max(a.max_stream_seq, b.max_stream_seq),
        newest_occurred_at=max(newest) if newest else None,
    )


async def _sleep(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep, waking early when stopping; True if `stop` is set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _nak(msgs: list[Msg]) -> None:
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()
