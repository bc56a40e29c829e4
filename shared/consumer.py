"""Durable pull consumers with explicit acks: the one consume boundary of every service.

Each durable is filtered by the server to what its service acts on (`filter_subjects`,
e.g. only `OrderRouted` for the executor), so nothing is delivered only to be skipped.

A `Consumer` runs in one of two modes. Per message (router, executor, resume nudges): the
handler receives each decoded event (or whatever the `decode` hook makes of a message:
resume nudges, `shared.resume`). Returning acks the message; raising `Retry` (or
`StaleRead`) naks it with a delay; any other exception naks it with a growing delay and is
logged; a message that cannot be decoded is terminated. Messages are handled concurrently
(up to `concurrency`). In batches (the projector): the handler receives everything
collected since its last call (up to `batch`), one call at a time, and the batch is acked
when it returns; a batch that fails is retried as it is, its messages kept in progress,
so later events never overtake it. Either way one loop sends in-progress acks for every
message held longer than a third of the ack wait, and metrics and trace spans are
recorded here, once, for every service. Per message, the span continues the trace the
message's headers carry, and every line logged while it is handled names its order
(`shared.logs.about`) and trace.

The ack wait is short (seconds), so a message held by a process that died is handed to
another within it. Deliveries are bounded (`max_deliver`): a handler failing on the last
one terminates the message, and nats-server's advisory of that (or of the deliveries
running out while a process held it) is kept in the dead-letter stream
(`shared.eventlog.ensure_streams`) for `python -m tools.deadletter` to list and re-drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import logs, metrics, tracing
from shared.eventlog import EVENT_TYPE_HEADER, StaleRead, decode_message
from shared.durables import ConsumerSpec
from shared.setup import SETUP_STEP, require_consumer

log = logging.getLogger(__name__)

Handler = Callable[[Any, Msg], Awaitable[None]]
#: A batch handler: the decoded items and their messages, in delivery order.
BatchHandler = Callable[[list[Any], list[Msg]], Awaitable[None]]
#: Makes a handler's argument of a message; it has `order_id` and `seq`, and raises
#: msgspec's DecodeError or ValidationError for a message it cannot read.
Decode = Callable[[Msg], Any]


#: Errors of a broker that is away or restarting (a step that hit one is worth taking up again).
BROKER_AWAY = (nats.errors.ConnectionClosedError, nats.errors.TimeoutError, nats.errors.NoRespondersError,
               nats.errors.StaleConnectionError, asyncio.TimeoutError)
#: Tries of one step within a delivery when the broker goes away under it.
_BROKER_RETRIES = 3
#: How long a stopping consumer waits for more of what its open pull requests will bring:
#: a server filling them sends within milliseconds.
_FILLING_S = 0.05


class Retry(Exception):
    """Ask for redelivery after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0):
        super().__init__(reason)
        self.delay = delay


class Consumer:
    """Pulls from one durable consumer and hands what it delivers to `handler`.

    Pulling is continuous: standing pull requests keep up to `concurrency` messages (in
    batch mode, twice `batch`) on their way, topped up as messages are acked, so a
    message costs no request of its own and the next batch arrives while the current one
    is handled. Requests expire and are renewed. A restarted server forgets them: after a
    reconnect the loop pulls again at once, and idle heartbeats (one small message a
    second while nothing flows) tell a request lost some other way from a quiet stream.

    `batch` set: batch mode, `handler(items, msgs)`; else `handler(item, msg)` per message.
    `linger` (seconds, batch mode): how long a batch may gather after its first message
    before it is handed over, unless it fills first.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        spec: ConsumerSpec,
        handler: Handler | BatchHandler,
        *,
        concurrency: int = 64,
        batch: int | None = None,
        linger: float = 0.0,
        expires: float = 30.0,
        heartbeat: float = 1.0,
        decode: Decode = decode_message,
    ):
        self._js = js
        self._nc = js._nc
        self._stream = stream
        self._spec = spec
        self._handler = handler
        self._decode = decode
        self._batch = batch
        self._linger = linger
        self._capacity = 2 * batch if batch else concurrency
        self._expires = expires
        self._heartbeat = heartbeat
        self._tasks: set[asyncio.Task] = set()
        #: Messages delivered and not yet acked, nak'd or terminated, with when they came.
        self._held: dict[int, tuple[Msg, float]] = {}
        self._outstanding = 0  # requested and not yet delivered or expired
        self._wake = asyncio.Event()
        self._last_seen = 0.0
        # Batch mode: decoded and waiting for the handler.
        self._items: list[Any] = []
        self._msgs: list[Msg] = []
        self._collected = asyncio.Event()
        # What the server holds the consumer to (the set-up step's settings), read at start.
        self._ack_wait = spec.ack_wait
        self._max_deliver = spec.max_deliver

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` or the connection closes for good; `SetupMissing` at once if the
        durable does not exist. The batch in hand is finished first."""
        info = await require_consumer(self._js, self._stream, self._spec.durable)
        self._ack_wait = info.config.ack_wait or self._spec.ack_wait
        self._max_deliver = info.config.max_deliver or -1
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=self._on_message)
        beside = [asyncio.create_task(self._report_pending(stop)), asyncio.create_task(self._keep_alive())]
        ended = asyncio.Event()  # `stop`, or a connection closed for good
        worker = asyncio.create_task(self._batches(ended)) if self._batch else None
        try:
            await self._pull(stop, inbox)
        finally:
            await self._take_in_flight(sub)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            ended.set()
            if worker is not None:
                await worker  # finishes the batch in hand, naks what it did not start
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self._ack_wait)
            for task in beside:
                task.cancel()

    async def _take_in_flight(self, sub: Any) -> None:
        """Take in what the server sent before now, so a stop loses nothing already delivered.

        Pull requests cannot be withdrawn: a message they deliver after the subscription is
        gone waits out its ack wait. The server answers a request from its own task, so even
        after a round trip (answered after everything it sent before) messages for requests
        it is still filling may come: while requests are open and messages keep coming, they
        are taken in too. That leaves only messages stored after this moment to that fate.
        """
        if not self._nc.is_connected:
            return
        with contextlib.suppress(Exception):
            await self._nc.flush(timeout=1)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                heard = self._last_seen
                while sub.pending_msgs and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)  # the callback of the last one taken from the queue
                if self._outstanding <= 0:
                    break
                await asyncio.sleep(_FILLING_S)
                if self._last_seen == heard and not sub.pending_msgs:
                    break  # nothing came meanwhile: the open requests wait for new messages

    async def _pull(self, stop: asyncio.Event, inbox: str) -> None:
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._spec.durable}"
        stopping = asyncio.create_task(stop.wait())
        self._last_seen = time.monotonic()
        reconnects = self._nc.stats["reconnects"]
        try:
            while not stop.is_set() and not self._nc.is_closed:
                if self._nc.stats["reconnects"] != reconnects:
                    # A restarted server has forgotten our requests. (Where another server
                    # still holds them, up to twice the capacity are in flight for a while.)
                    reconnects = self._nc.stats["reconnects"]
                    self._outstanding = 0
                    self._last_seen = time.monotonic()
                    log.info("reconnected; pulling from %s again", self._spec.durable)
                elif time.monotonic() - self._last_seen > 3 * self._heartbeat:
                    # No message and no heartbeat: the server no longer holds our requests.
                    self._outstanding = 0
                    self._last_seen = time.monotonic()
                want = self._capacity - len(self._held) - self._outstanding
                asking = want >= max(1, self._capacity // 4) or (want > 0 and self._outstanding == 0)
                if asking and self._nc.is_connected:  # while reconnecting, a request would only queue up
                    request = {"batch": want, "expires": int(self._expires * 1e9),
                               "idle_heartbeat": int(self._heartbeat * 1e9)}
                    try:
                        await self._nc.publish(next_subject, json.dumps(request).encode(), reply=inbox)
                        self._outstanding += want
                    except Exception as exc:  # the connection dropped meanwhile: try again shortly
                        log.warning("pull from %s failed: %s", self._spec.durable, exc)
                self._wake.clear()
                waiter = asyncio.create_task(self._wake.wait())
                # Disconnected, look often for the reconnect; connected, heartbeats pace the loop.
                timeout = self._heartbeat if self._nc.is_connected else 0.05
                await asyncio.wait({waiter, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            stopping.cancel()

    async def _on_message(self, msg: Msg) -> None:
        self._last_seen = time.monotonic()
        headers = msg.headers
        if headers and not msg.data and (status := headers.get("Status")) is not None:
            if status in ("408", "409"):  # a request expired or was cut short: what it did not deliver
                undelivered = headers.get("Nats-Pending-Messages")
                if undelivered is None:  # consumer deleted, leadership change: start afresh
                    self._outstanding = 0
                else:
                    self._outstanding = max(0, self._outstanding - int(undelivered))
                self._wake.set()
            return  # 100: idle heartbeat
        if self._outstanding > 0:
            self._outstanding -= 1
        try:
            item = self._decode(msg)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            kind = (headers or {}).get(EVENT_TYPE_HEADER, "unknown")
            log.error("undecodable message parked", extra={"subject": msg.subject, "error": str(exc)})
            metrics.bound(metrics.EVENTS_HANDLED, kind, "error").inc()
            await self._park(msg, "undecodable")
            return
        self._held[id(msg)] = (msg, self._last_seen)
        if self._batch:
            self._items.append(item)
            self._msgs.append(msg)
            self._collected.set()
            return
        task = asyncio.create_task(self._handle(item, msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, msg: Msg) -> None:
        """`msg` is acked, nak'd or terminated: its place may be pulled again."""
        self._held.pop(id(msg), None)
        self._wake.set()

    async def _handle(self, event: Any, msg: Msg) -> None:
        headers = msg.headers or {}
        kind = headers.get(EVENT_TYPE_HEADER, "unknown")
        started = time.perf_counter()
        outcome = "ok"
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        last = 0 < self._max_deliver <= delivered
        # One span per delivery, around the nak or park too, so every line logged about
        # this message names the order and its trace.
        with logs.about(event.order_id), \
                tracing.span(f"handle {kind}", headers, **{"order.id": event.order_id, "event.seq": event.seq}) as span:
            try:
                for attempt in range(1, _BROKER_RETRIES + 1):
                    try:
                        await self._handler(event, msg)
                        break
                    except Exception as exc:
                        if attempt == _BROKER_RETRIES or not self._broker_lost(exc):
                            raise
                        # The broker went away mid-step: a nak could not reach it either, and the
                        # message would wait out its ack wait once the broker is back. Steps are
                        # idempotent, so this one is taken up again here as soon as it is back.
                        log.info("broker lost mid-step; resuming once reconnected",
                                 extra={"event": kind, "error": repr(exc)})
                        await self._connected()
                await self._connected()
                await msg.ack()  # a buffered publish: nothing waits for the server
            except (Retry, StaleRead) as exc:
                outcome = "retry"
                span.set_attribute("retry.reason", str(exc))
                await self._connected()
                if last:
                    tracing.failed(f"parked after {delivered} deliveries: {exc}", span)
                    log.error("event parked: still not done on its last delivery",
                              extra={"event": kind, "delivery": delivered, "reason": str(exc)})
                    await self._park(msg, f"retried {delivered} times: {exc}")
                else:
                    log.info("event will be redelivered", extra={"reason": str(exc)})
                    await msg.nak(delay=exc.delay)
            except Exception as exc:
                outcome = "error"
                span.record_exception(exc)
                tracing.failed(f"{type(exc).__name__}: {exc}", span)
                log.exception("handler failed", extra={"event": kind, "delivery": delivered})
                await self._connected()
                if last:
                    await self._park(msg, f"failed {delivered} times: {exc!r}")
                else:
                    await msg.nak(delay=min(30.0, 0.5 * 2 ** min(delivered, 6)))
            finally:
                self._release(msg)
                metrics.bound(metrics.EVENTS_HANDLED, kind, outcome).inc()
                metrics.bound(metrics.EVENT_DURATION, kind).observe(time.perf_counter() - started)

    async def _batches(self, stop: asyncio.Event) -> None:
        """Batch mode: hand over what was collected, one batch at a time, until `stop`."""
        assert self._batch is not None
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                if not self._msgs:
                    self._collected.clear()
                    waiter = asyncio.create_task(self._collected.wait())
                    await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                if stop.is_set():
                    break
                if self._linger and len(self._msgs) < self._batch:
                    # Counted from the first message's arrival: one that came while the last
                    # batch was written has gathered for that long already.
                    _, first_came = self._held.get(id(self._msgs[0]), (None, time.monotonic()))
                    left = self._linger - (time.monotonic() - first_came)
                    if left > 0:
                        await asyncio.wait({stopping}, timeout=left)
                    if stop.is_set():
                        break
                items, msgs = self._items[: self._batch], self._msgs[: self._batch]
                del self._items[: self._batch], self._msgs[: self._batch]
                if not await self._apply(items, msgs, stop):
                    await self._nak(msgs)
                    break
                for msg in msgs:
                    await msg.ack()  # buffered publishes: nothing waits for the server
                    self._release(msg)
        finally:
            stopping.cancel()
            # Collected but not started: hand back for redelivery now.
            msgs, self._msgs, self._items = self._msgs, [], []
            await self._nak(msgs)

    async def _apply(self, items: list[Any], msgs: list[Msg], stop: asyncio.Event) -> bool:
        """Run the batch handler until it succeeds (True) or `stop` is set (False)."""
        delay = 0.5
        while True:
            try:
                await self._handler(items, msgs)  # type: ignore[call-arg]
                return True
            except Exception:
                # Not nak'd: a redelivery would let later events overtake these. The keep-alive
                # loop holds them meanwhile.
                log.exception("batch not handled; retrying", extra={"events": len(items)})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return False
            delay = min(delay * 2, 10.0)

    async def _nak(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak()
            self._release(msg)

    def _broker_lost(self, exc: Exception) -> bool:
        return not self._nc.is_connected or isinstance(exc, BROKER_AWAY)

    async def _connected(self, timeout: float = 60.0) -> None:
        """Until the connection is back (reconnects are unlimited), or `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._nc.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _park(self, msg: Msg, reason: str) -> None:
        """Terminate `msg`: the server's advisory, with `reason`, lands in the dead-letter stream."""
        metrics.bound(metrics.EVENTS_DEAD_LETTERED, self._spec.durable).inc()
        await self._nc.publish(msg.reply, b"+TERM " + reason.replace("\n", " ")[:200].encode())
        self._release(msg)

    async def _keep_alive(self) -> None:
        """Every third of the ack wait, an in-progress ack for each message held longer than that."""
        period = self._ack_wait / 3
        while True:
            await asyncio.sleep(period)
            due = time.monotonic() - period
            for msg, since in list(self._held.values()):
                if since <= due:
                    with contextlib.suppress(Exception):  # reconnecting: the next round may pass
                        await msg.in_progress()

    async def _report_pending(self, stop: asyncio.Event) -> None:
        """The backlog every few seconds; a consumer deleted meanwhile is reported (only set-up creates it)."""
        labels = (self._stream, self._spec.durable)
        pending, acks, limit, redelivered = (
            metrics.bound(gauge, *labels) for gauge in (
                metrics.CONSUMER_PENDING, metrics.CONSUMER_ACK_PENDING, metrics.CONSUMER_MAX_ACK_PENDING,
                metrics.CONSUMER_REDELIVERED,
            )
        )
        metrics.bound(metrics.EVENTS_DEAD_LETTERED, self._spec.durable)  # the series exists at 0 from the start
        while not stop.is_set():
            try:
                info = await self._js.consumer_info(self._stream, self._spec.durable)
                pending.set(info.num_pending or 0)
                acks.set(info.num_ack_pending or 0)
                limit.set(info.config.max_ack_pending or -1)
                redelivered.set(info.num_redelivered or 0)
            except nats.js.errors.NotFoundError:
                # Pulls resume by themselves once the consumer is back.
                log.error(f"consumer missing; {SETUP_STEP}", extra={"consumer": self._spec.durable})
            except Exception:  # a missed sample is not worth failing over
                pass
            await asyncio.sleep(5)
