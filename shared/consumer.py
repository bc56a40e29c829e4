"""Durable pull consumers with explicit acks: the one consume boundary of every service.

A handler receives each decoded event (or whatever the consumer's `decode` hook makes of
a message: resume nudges, `shared.resume`). Returning acks the message; raising `Retry` naks
it with a delay; any other exception naks it with a growing delay and is logged; a
message that cannot be decoded is terminated. Messages are handled concurrently (up to
`concurrency`), and a long handler keeps its message from being redelivered by sending
in-progress acks. Metrics and trace spans are recorded here, once, for every service.

The ack wait is short (seconds), so a message held by a process that died is handed to
another within it. Deliveries are bounded (`max_deliver`): a handler failing on the last
one terminates the message, and nats-server's advisory of that (or of the deliveries
running out while a process held it) is kept in the dead-letter stream
(`shared.eventlog.ensure_streams`) for `python -m tools.deadletter` to list and re-drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec
import nats.errors
import nats.js.api as api
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import metrics, tracing
from shared.eventlog import EVENT_TYPE_HEADER, StaleRead, decode_message
from shared.setup import require_consumer

log = logging.getLogger(__name__)

Handler = Callable[[Any, Msg], Awaitable[None]]
#: Makes a handler's argument of a message; it has `order_id` and `seq`, and raises
#: msgspec's DecodeError or ValidationError for a message it cannot read.
Decode = Callable[[Msg], Any]


#: Errors of a broker that is away or restarting (a step that hit one is worth taking up again).
BROKER_AWAY = (nats.errors.ConnectionClosedError, nats.errors.TimeoutError, nats.errors.NoRespondersError,
               nats.errors.StaleConnectionError, asyncio.TimeoutError)
#: Tries of one step within a delivery when the broker goes away under it.
_BROKER_RETRIES = 3


class Retry(Exception):
    """Ask for redelivery after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0):
        super().__init__(reason)
        self.delay = delay


#: Seconds a delivered message waits for its ack before it is delivered again: a process
#: killed mid-handling costs about this much. Long handlers send in-progress acks.
ACK_WAIT = 3.0
#: Deliveries of one message before it is parked in the dead-letter stream.
MAX_DELIVER = 10


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    filter_subject: str
    ack_wait: float = ACK_WAIT
    max_deliver: int = MAX_DELIVER
    max_ack_pending: int = 2048
    #: Event types the handler acts on; others are acked without decoding.
    wants: frozenset[str] | None = None


async def ensure_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> None:
    """Create the durable consumer, or bring an existing one's tunable settings to `spec`.

    Idempotent; the admin set-up step's job. An existing consumer keeps its position (the
    point of it) and what cannot change in place (deliver policy); its ack wait, maximum
    deliveries and maximum of pending acks are updated, so a deployment made with older
    settings gets the new ones from the next set-up run.
    """
    config = api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subject=spec.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
    )
    for _ in range(3):
        try:
            info = await js.consumer_info(stream, spec.durable)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_consumer(stream, config)
                return
            except nats.js.errors.APIError:
                continue  # another replica created it meanwhile: look again
        existing = info.config
        tunable = {"ack_wait": spec.ack_wait, "max_deliver": spec.max_deliver, "max_ack_pending": spec.max_ack_pending}
        if existing.filter_subject != spec.filter_subject:
            log.warning("consumer %s filters %s, not %s; kept", spec.durable, existing.filter_subject, spec.filter_subject)
        if any(getattr(existing, name) != value for name, value in tunable.items()):
            # The same durable name with a changed config is an update (nats-server 2.9+).
            await js.add_consumer(stream, dataclasses.replace(existing, **tunable))
            log.info("consumer %s updated: %s", spec.durable, tunable)
        return
    raise RuntimeError(f"could not create or find consumer {spec.durable} on {stream}")


class Consumer:
    """Pulls from one durable consumer and runs `handler` for each wanted event.

    Pulling is continuous: standing pull requests keep up to `concurrency` messages on
    their way, topped up as handlers finish, so a message costs no request of its own.
    Requests expire and are renewed. A restarted server forgets them: after a reconnect
    the loop pulls again at once, and idle heartbeats (one small message a second while
    nothing flows) tell a request lost some other way from a quiet stream in seconds.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        concurrency: int = 64,
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
        self._concurrency = concurrency
        self._expires = expires
        self._heartbeat = heartbeat
        self._tasks: set[asyncio.Task] = set()
        self._outstanding = 0  # requested and not yet delivered or expired
        self._wake = asyncio.Event()
        self._last_seen = 0.0
        # What the server holds the consumer to (the set-up step's settings), read at start.
        self._ack_wait = spec.ack_wait
        self._max_deliver = spec.max_deliver

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; `SetupMissing` at once if the durable does not exist."""
        info = await require_consumer(self._js, self._stream, self._spec.durable)
        self._ack_wait = info.config.ack_wait or self._spec.ack_wait
        self._max_deliver = info.config.max_deliver or -1
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=self._on_message)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._spec.durable}"
        pending_task = asyncio.create_task(self._report_pending(stop))
        stopping = asyncio.create_task(stop.wait())
        self._last_seen = time.monotonic()
        reconnects = self._nc.stats["reconnects"]
        try:
            while not stop.is_set():
                if self._nc.stats["reconnects"] != reconnects:
                    # A restarted server has forgotten our requests. (Where another server
                    # still holds them, up to twice `concurrency` are in flight for a while.)
                    reconnects = self._nc.stats["reconnects"]
                    self._outstanding = 0
                    self._last_seen = time.monotonic()
                    log.info("reconnected; pulling from %s again", self._spec.durable)
                elif time.monotonic() - self._last_seen > 3 * self._heartbeat:
                    # No message and no heartbeat: the server no longer holds our requests.
                    self._outstanding = 0
                    self._last_seen = time.monotonic()
                want = self._concurrency - len(self._tasks) - self._outstanding
                asking = want >= max(1, self._concurrency // 4) or (want > 0 and self._outstanding == 0)
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
            pending_task.cancel()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self._ack_wait)

    async def _on_message(self, msg: Msg) -> None:
        self._last_seen = time.monotonic()
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None and not msg.data:
            if status in ("408", "409"):  # a request expired or was cut short: what it did not deliver
                undelivered = headers.get("Nats-Pending-Messages")
                if undelivered is None:  # consumer deleted, leadership change: start afresh
                    self._outstanding = 0
                else:
                    self._outstanding = max(0, self._outstanding - int(undelivered))
                self._wake.set()
            return  # 100: idle heartbeat
        self._outstanding = max(0, self._outstanding - 1)
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        kind = headers.get(EVENT_TYPE_HEADER, "unknown")
        if self._spec.wants is not None and kind not in self._spec.wants:
            metrics.EVENTS_HANDLED.labels(metrics.service(), kind, "skipped").inc()
            await msg.ack()
            return
        started = time.perf_counter()
        try:
            event = self._decode(msg)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("undecodable message parked", extra={"subject": msg.subject, "error": str(exc)})
            metrics.EVENTS_HANDLED.labels(metrics.service(), kind, "error").inc()
            await self._park(msg, "undecodable")
            return
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        outcome = "ok"
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        last = 0 < self._max_deliver <= delivered
        try:
            for attempt in range(1, _BROKER_RETRIES + 1):
                try:
                    with tracing.span(f"handle {kind}", headers, **{"order.id": event.order_id, "event.seq": event.seq}):
                        await self._handler(event, msg)
                    break
                except Exception as exc:
                    if attempt == _BROKER_RETRIES or not self._broker_lost(exc):
                        raise
                    # The broker went away mid-step: a nak could not reach it either, and the
                    # message would wait out its ack wait once the broker is back. Steps are
                    # idempotent, so this one is taken up again here as soon as it is back.
                    log.info("broker lost mid-step; resuming once reconnected",
                             extra={"orderId": event.order_id, "event": kind, "error": repr(exc)})
                    await self._connected()
            await self._connected()
            await msg.ack()
        except (Retry, StaleRead) as exc:
            outcome = "retry"
            await self._connected()
            if last:
                log.error("event parked: still not done on its last delivery",
                          extra={"orderId": event.order_id, "event": kind, "delivery": delivered, "reason": str(exc)})
                await self._park(msg, f"retried {delivered} times: {exc}")
            else:
                log.info("event will be redelivered", extra={"orderId": event.order_id, "reason": str(exc)})
                await msg.nak(delay=exc.delay)
        except Exception as exc:
            outcome = "error"
            log.exception("handler failed", extra={"orderId": event.order_id, "event": kind, "delivery": delivered})
            await self._connected()
            if last:
                await self._park(msg, f"failed {delivered} times: {exc!r}")
            else:
                await msg.nak(delay=min(30.0, 0.5 * 2 ** min(delivered, 6)))
        finally:
            heartbeat.cancel()
            metrics.EVENTS_HANDLED.labels(metrics.service(), kind, outcome).inc()
            metrics.EVENT_DURATION.labels(metrics.service(), kind).observe(time.perf_counter() - started)

    def _broker_lost(self, exc: Exception) -> bool:
        return not self._nc.is_connected or isinstance(exc, BROKER_AWAY)

    async def _connected(self, timeout: float = 60.0) -> None:
        """Until the connection is back (reconnects are unlimited), or `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._nc.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _park(self, msg: Msg, reason: str) -> None:
        """Terminate `msg`: the server's advisory, with `reason`, lands in the dead-letter stream."""
        metrics.EVENTS_DEAD_LETTERED.labels(metrics.service(), self._spec.durable).inc()
        await self._nc.publish(msg.reply, b"+TERM " + reason.replace("\n", " ")[:200].encode())

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            with contextlib.suppress(Exception):  # reconnecting: the next one may pass
                await msg.in_progress()

    async def _report_pending(self, stop: asyncio.Event) -> None:
        gauge = metrics.CONSUMER_PENDING.labels(metrics.service(), self._spec.durable)
        while not stop.is_set():
            try:
                info = await self._js.consumer_info(self._stream, self._spec.durable)
                gauge.set(info.num_pending or 0)
            except Exception:  # a missed sample is not worth failing over
                pass
            await asyncio.sleep(5)
