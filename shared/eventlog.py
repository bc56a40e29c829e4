"""The order event log on JetStream: stream set-up, guarded appends, per-order replay.

Each event is stored on `orders.<orderId>.<seq>.<EventType>` (`shared.topology`). Appends
carry `Nats-Msg-Id = <orderId>:<seq>` so a retried publish of the same step is
deduplicated, and `Nats-Expected-Last-Subject-Sequence` checked against the order's
wildcard (`-Subject: orders.<orderId>.>`) so two writers cannot both move one order: the
second gets `ConcurrencyConflict`. An append whose event (by event id) is
already stored reports `duplicate=True`; a caller that sees a conflict or a duplicate of
someone else's step reloads the order and decides again from what the log holds.

Replay of one order is a direct get of the last message of every subject under the
order's wildcard (`multi_last`): one message per subject, so that is every event, answered
by any stream replica without a consumer. (A `next_by_subj` with a wildcard would scan to
the end of the stream.)
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.api as api
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import events as ev
from shared import metrics, retention, tracing
from shared.accounts import ensure_accounts
from shared.orders import OrderState, fold
from shared.topology import Topology

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
EVENT_TYPE_HEADER = "Order-Event"
#: Events per replay request; an order holding more is read on with slower requests.
_BATCH = 1024
#: Pauses before reading an order again from a replica that lags the event in hand.
_STALE_RETRIES = (0.01, 0.02, 0.05, 0.1, 0.2)


class StaleRead(Exception):
    """A replica answered for an order without an event known to be stored: try again later."""

    delay = 0.5


class ConcurrencyConflict(Exception):
    """Another writer appended to the order first."""


@dataclass(frozen=True, slots=True)
class Appended:
    stream_seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    stream_seq: int
    event: ev.OrderEvent
    #: When the log stored it (ms since epoch, the server's clock); None for an event this
    #: process just appended, whose acknowledgement carries no time.
    stored_at: int | None = None
    #: The trace context it was appended in (`traceparent`); "" when tracing is off or it had none.
    trace: str = ""


@dataclass(frozen=True, slots=True)
class History:
    """An order's events as the log holds them, with the position to append after."""

    events: tuple[StoredEvent, ...]
    state: OrderState | None
    last_stream_seq: int  # 0 when the order has no events


async def ensure_streams(
    js: JetStreamContext,
    topology: Topology,
    *,
    replicas: int = 1,
    max_age_days: float = retention.DEFAULT_MAX_AGE_DAYS,
    max_bytes: int = retention.DEFAULT_MAX_BYTES,
) -> None:
    """Create or update the streams the engine needs; safe to run from every replica.

    The order stream's limits follow `shared.retention`: limits that could drop an open
    order's events are refused, and a full stream refuses appends rather than drop any.
    """
    retention.check_limits(max_age_days, max_bytes)
    orders = api.StreamConfig(
        name=topology.orders_stream,
        subjects=[topology.orders_subjects],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.NEW,
        max_age=max_age_days * 86_400.0,
        max_bytes=max_bytes,
        num_replicas=replicas,
        duplicate_window=120.0,
        allow_direct=True,
        republish=api.RePublish(src=topology.orders_subjects, dest=topology.live_republish),
        description="Order events: the engine's source of truth",
    )
    quotes = api.StreamConfig(
        name=topology.quotes_stream,
        subjects=[f"{topology.quotes_prefix}.>"],
        storage=api.StorageType.MEMORY,
        max_msgs_per_subject=1,
        num_replicas=replicas,
        allow_direct=True,
        description="Latest quote per pair and venue",
    )
    launches_stream, launch_subjects = topology.launches()
    # One message per pair, ever: a second launch of a stored pair is refused, not
    # appended (nor, as DiscardPolicy.OLD would, put in place of the first).
    launches = api.StreamConfig(
        name=launches_stream,
        subjects=[launch_subjects],
        storage=api.StorageType.FILE,
        max_msgs_per_subject=1,
        discard=api.DiscardPolicy.NEW,
        discard_new_per_subject=True,
        num_replicas=replicas,
        duplicate_window=120.0,
        allow_direct=True,
        description="Pool launches: the first launch of each pair",
    )
    # Requests per API key and time window, summed by the server (ADR-49 counters); a
    # window is only read while it is current, so a minute of age is plenty.
    ratelimit = api.StreamConfig(
        name=topology.ratelimit_stream,
        subjects=[topology.ratelimit_subject("*", "*", "*")],
        storage=api.StorageType.MEMORY,
        allow_msg_counter=True,
        allow_direct=True,
        max_age=60.0,
        num_replicas=replicas,
        description="Requests per API key, kind and window",
    )
    # nats-server's advisories of order events given up on: terminated by a consumer or
    # out of deliveries (`shared.consumer`), kept for `python -m tools.deadletter`.
    deadletter = api.StreamConfig(
        name=topology.deadletter_stream,
        subjects=deadletter_subjects(topology),
        storage=api.StorageType.FILE,
        num_replicas=replicas,
        max_age=30 * 86_400.0,
        max_msgs=100_000,
        description="Order events parked after their last failed delivery",
    )
    # Nudges to resume an order, one durable consumer per role (disjoint filters, as a work
    # queue requires); a nudge is gone once acked, a repeat within the window is dropped,
    # and one waiting per order and role is enough (an owner that is down queues no more).
    resume = api.StreamConfig(
        name=topology.resume_stream,
        subjects=[topology.resume_subject("*", "*")],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.WORK_QUEUE,
        max_msgs_per_subject=1,
        num_replicas=replicas,
        duplicate_window=120.0,
        description="Nudges to resume an order from the log, per role",
    )
    await _warn_old_layout(js, topology)
    for config in (orders, quotes, launches, ratelimit, deadletter, resume, book_snapshots(topology, replicas)):
        await _add_or_update(js, config)
    await ensure_accounts(js, topology, replicas=replicas)


async def _warn_old_layout(js: JetStreamContext, topology: Topology) -> None:
    """Say so when the order stream holds events of the layout before `orders.<id>.<seq>.<type>`.

    The stream is updated in place; those events stay stored, but no replay by order
    reaches them (they sit on `orders.<orderId>`): such orders are readable only from the
    read model.
    """
    try:
        info = await js.stream_info(topology.orders_stream, subjects_filter=f"{topology.orders_prefix}.*")
    except nats.js.errors.NotFoundError:
        return
    old = sum((info.state.subjects or {}).values())
    if old:
        log.warning("order stream %s holds %d events stored on orders.<orderId>; those orders are readable only"
                    " from the read model", topology.orders_stream, old)


def deadletter_subjects(topology: Topology) -> list[str]:
    """The advisory subjects of the order stream's parked events, any consumer."""
    return [
        f"$JS.EVENT.ADVISORY.CONSUMER.{kind}.{topology.orders_stream}.*" for kind in ("MAX_DELIVERIES", "MSG_TERMINATED")
    ]


def book_snapshots(topology: Topology, replicas: int) -> api.StreamConfig:
    """The object store of the routers' book snapshots, as nats-py lays one out.

    A snapshot no router has rewritten for a day is dropped (and with it any chunks a
    racing writer left behind); a router that finds none replays the whole log instead.
    """
    bucket = topology.book_bucket
    return api.StreamConfig(
        name=f"OBJ_{bucket}",
        subjects=[f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        storage=api.StorageType.FILE,
        max_age=86_400.0,
        max_bytes=-1,
        max_consumers=0,
        discard=api.DiscardPolicy.NEW,
        allow_rollup_hdrs=True,
        allow_direct=True,
        num_replicas=replicas,
        description="Resting-book snapshots of the routers",
    )


async def _add_or_update(js: JetStreamContext, config: api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different configuration
            raise
        await js.update_stream(config)


class EventLog:
    """Appends to and replays from the order stream."""

    def __init__(self, nc: Client, js: JetStreamContext, topology: Topology, *, timeout: float = 5.0):
        self._nc = nc
        self._js = js
        self.topology = topology
        self._timeout = timeout
        self._inbox_prefix: str | None = None
        self._replies: dict[str, asyncio.Queue[Msg]] = {}
        self._ids = itertools.count()
        # The series exist at 0 before the first conflict or stale read, so ratios and alerts see them.
        metrics.bound(metrics.APPEND_CONFLICTS)
        metrics.bound(metrics.STALE_READS)

    async def append(
        self, event: ev.OrderEvent, *, expected_stream_seq: int, timeout: float | None = None, order_type: str = ""
    ) -> Appended:
        """Append `event` if the order's last stored event is at `expected_stream_seq`.

        `timeout` (seconds, default the log's) bounds the wait for the acknowledgement; a
        publish that times out may still be stored, now or when the connection is back.
        The event carries the current trace context and `order_type` (for its handlers'
        spans); an `OrderFailed` ends the current span in error.
        """
        kind = type(event).__name__
        headers = {
            "Nats-Msg-Id": f"{event.order_id}:{event.seq}",
            "Nats-Expected-Last-Subject-Sequence": str(expected_stream_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": self.topology.order_wildcard(event.order_id),
            EVENT_TYPE_HEADER: kind,
        }
        if isinstance(event, ev.OrderAccepted):
            order_type = event.order.order_type
        tracing.inject(headers, order_type)
        try:
            ack = await self._js.publish(
                self.topology.order_subject(event.order_id, event.seq, kind),
                ev.encode(event),
                timeout=self._timeout if timeout is None else timeout,
                stream=self.topology.orders_stream,
                headers=headers,
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            # The server checks the expected sequence before deduplication, so a retried
            # publish whose first try was stored lands here too: look for our own event.
            for stored in await self.read(event.order_id):
                if stored.event.seq == event.seq and stored.event.event_id == event.event_id:
                    return Appended(stream_seq=stored.stream_seq, duplicate=True)
            metrics.bound(metrics.APPEND_CONFLICTS).inc()
            raise ConcurrencyConflict(f"order {event.order_id}: {exc.description}") from exc
        if not ack.duplicate:
            metrics.bound(metrics.EVENTS_APPENDED, kind).inc()
        if isinstance(event, ev.OrderFailed):
            tracing.failed(f"{event.code}: {event.reason}")
        return Appended(stream_seq=ack.seq, duplicate=bool(ack.duplicate))

    async def load(self, order_id: str, *, through_seq: int = 0) -> History:
        """Every stored event of one order, in order, and the state they fold to.

        `through_seq` is an order seq the caller knows is stored (the event it was handed,
        a nudge's): a stream replica that has not caught up with it yet answers for an
        older order, so it is asked again, and `StaleRead` is raised if it stays behind.
        """
        stored = await self.read(order_id)
        for delay in _STALE_RETRIES:
            if through_seq <= 0 or (stored and stored[-1].event.seq >= through_seq):
                break
            metrics.bound(metrics.STALE_READS).inc()
            await asyncio.sleep(delay)
            stored = await self.read(order_id)
        else:
            if not stored or stored[-1].event.seq < through_seq:
                raise StaleRead(f"order {order_id}: the log answered up to seq "
                                f"{stored[-1].event.seq if stored else 0}, not {through_seq}")
        state = fold(s.event for s in stored)
        return History(events=tuple(stored), state=state, last_stream_seq=stored[-1].stream_seq if stored else 0)

    async def read(self, order_id: str, *, from_stream_seq: int = 1) -> list[StoredEvent]:
        """The order's stored events from a stream position on, in stream order."""
        out: list[StoredEvent] = []
        for seq, data, stored_at, trace in await self._raw(order_id):
            if seq >= from_stream_seq:
                out.append(StoredEvent(stream_seq=seq, event=ev.decode(data), stored_at=stored_at, trace=trace))
        return out

    async def held_by_leader(self, order_id: str) -> int:
        """How many events of the order the stream's leader holds.

        A direct get may be answered by a replica that lags behind; this asks the leader.
        """
        info = await self._js.stream_info(self.topology.orders_stream,
                                          subjects_filter=self.topology.order_wildcard(order_id))
        return sum((info.state.subjects or {}).values())

    async def _raw(self, order_id: str) -> list[tuple[int, bytes, int | None, str]]:
        wildcard = self.topology.order_wildcard(order_id)
        raw, more = await self._direct_batch({"multi_last": [wildcard], "batch": _BATCH}, wildcard)
        while more and raw:
            # More events than one answer holds (no order has so many): read on by subject.
            batch, more = await self._direct_batch(
                {"seq": raw[-1][0] + 1, "next_by_subj": wildcard, "batch": _BATCH}, wildcard)
            raw += batch
        raw.sort(key=lambda item: item[0])  # stream order, whatever order the answer came in
        return raw

    async def _direct_batch(self, request: dict, subject: str) -> tuple[list[tuple[int, bytes, int | None, str]], bool]:
        inbox = await self._reply_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._replies[inbox] = queue
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{self.topology.orders_stream}", json.dumps(request).encode(), reply=inbox
            )
            out: list[tuple[int, bytes, int | None, str]] = []
            while True:
                msg = await asyncio.wait_for(queue.get(), self._timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "404":
                    return out, False
                if status == "204":  # end of batch: what it left out is still pending
                    return out, int(headers.get("Nats-Num-Pending", "0")) > 0
                if status == "503":  # no stream replica answers now: unavailable, not a fault
                    raise nats.errors.NoRespondersError
                if status is not None:
                    raise RuntimeError(f"direct get on {subject} failed: {status} {headers.get('Description')}")
                stamp = headers.get("Nats-Time-Stamp")
                out.append((int(headers["Nats-Sequence"]), msg.data, stamp_ms(stamp) if stamp else None,
                            tracing.carried(headers)))
        finally:
            del self._replies[inbox]

    async def _reply_inbox(self) -> str:
        if self._inbox_prefix is None:
            prefix = self._nc.new_inbox()
            await self._nc.subscribe(f"{prefix}.*", cb=self._on_reply)
            self._inbox_prefix = prefix
        return f"{self._inbox_prefix}.{next(self._ids)}"

    async def _on_reply(self, msg: Msg) -> None:
        queue = self._replies.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg)


def stamp_ms(text: str) -> int:
    """A `Nats-Time-Stamp` (RFC 3339 in UTC, up to nanoseconds) in ms since epoch, rounded down."""
    whole, _, fraction = text.removesuffix("Z").partition(".")
    if len(whole) != 19 or whole[4] + whole[7] + whole[10] + whole[13] + whole[16] != "--T::":
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    date_time = (whole[0:4], whole[5:7], whole[8:10], whole[11:13], whole[14:16], whole[17:19])
    seconds = calendar.timegm(tuple(int(part) for part in date_time) + (0, 0, 0))
    return seconds * 1000 + int((fraction + "000")[:3])


def decode_message(msg: Msg) -> ev.OrderEvent:
    return ev.decode(msg.data)


def stream_seq_of(msg: Msg) -> int:
    """The stream sequence of a message delivered by a consumer or a republish."""
    headers: dict[str, Any] = msg.headers or {}
    if "Nats-Sequence" in headers:
        return int(headers["Nats-Sequence"])
    return msg.metadata.sequence.stream
