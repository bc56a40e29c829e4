"""Durable pull consumers with explicit acks: the one consume boundary of every service.

A handler receives each decoded event (or whatever the consumer's `decode` hook makes of
a message: resume nudges, `shared.resume`). Returning acks the message; raising `Retry` naks
it with a delay; any other exception naks it with a growing delay and is logged; a
message that cannot be decoded is terminated. Messages are handled concurrently (up to
`concurrency`), and a long handler keeps its message from being redelivered by sending
in-progress acks. Metrics and trace spans are recorded here, once, for every service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec
import nats.js.api as api
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import metrics, tracing
from shared.eventlog import EVENT_TYPE_HEADER, decode_message
from shared.setup import require_consumer

log = logging.getLogger(__name__)

Handler = Callable[[Any, Msg], Awaitable[None]]
#: Makes a handler's argument of a message; it has `order_id` and `seq`, and raises
#: msgspec's DecodeError or ValidationError for a message it cannot read.
Decode = Callable[[Msg], Any]


class Retry(Exception):
    """Ask for redelivery after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0):
        super().__init__(reason)
        self.delay = delay


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    filter_subject: str
    ack_wait: float = 30.0
    max_ack_pending: int = 2048
    #: Event types the handler acts on; others are acked without decoding.
    wants: frozenset[str] | None = None


async def ensure_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> None:
    """Create the durable consumer if missing (idempotent; the admin set-up step's job).

    An existing consumer is used as it is: its position is the point of it, and some of
    its settings (deliver policy, filter) cannot change in place. A difference is logged.
    """
    config = api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subject=spec.filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait,
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
        if (existing.filter_subject, existing.ack_wait, existing.max_ack_pending) != (
            spec.filter_subject, spec.ack_wait, spec.max_ack_pending
        ):
            log.warning("consumer %s exists with other settings; using it as it is", spec.durable)
        return
    raise RuntimeError(f"could not create or find consumer {spec.durable} on {stream}")


class Consumer:
    """Pulls from one durable consumer and runs `handler` for each wanted event.

    Pulling is continuous: standing pull requests keep up to `concurrency` messages on
    their way, topped up as handlers finish, so a message costs no request of its own.
    Requests expire and are renewed; idle heartbeats tell a lost request (after a
    reconnect) from a quiet stream.
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
        heartbeat: float = 5.0,
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

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`; `SetupMissing` at once if the durable does not exist."""
        await require_consumer(self._js, self._stream, self._spec.durable)
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=self._on_message)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._spec.durable}"
        pending_task = asyncio.create_task(self._report_pending(stop))
        stopping = asyncio.create_task(stop.wait())
        self._last_seen = time.monotonic()
        try:
            while not stop.is_set():
                if time.monotonic() - self._last_seen > 2 * self._heartbeat + 1:
                    # No message and no heartbeat: the server no longer holds our requests.
                    self._outstanding = 0
                    self._last_seen = time.monotonic()
                want = self._concurrency - len(self._tasks) - self._outstanding
                if want >= max(1, self._concurrency // 4) or (want > 0 and self._outstanding == 0):
                    request = {"batch": want, "expires": int(self._expires * 1e9),
                               "idle_heartbeat": int(self._heartbeat * 1e9)}
                    try:
                        await self._nc.publish(next_subject, json.dumps(request).encode(), reply=inbox)
                        self._outstanding += want
                    except Exception as exc:  # reconnecting: try again shortly
                        log.warning("pull from %s failed: %s", self._spec.durable, exc)
                self._wake.clear()
                waiter = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waiter, stopping}, timeout=self._heartbeat, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            stopping.cancel()
            pending_task.cancel()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self._spec.ack_wait)

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
            log.error("undecodable message terminated", extra={"subject": msg.subject, "error": str(exc)})
            metrics.EVENTS_HANDLED.labels(metrics.service(), kind, "error").inc()
            await msg.term()
            return
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        outcome = "ok"
        try:
            with tracing.span(f"handle {kind}", headers, **{"order.id": event.order_id, "event.seq": event.seq}):
                await self._handler(event, msg)
            await msg.ack()
        except Retry as exc:
            outcome = "retry"
            log.info("event will be redelivered", extra={"orderId": event.order_id, "reason": str(exc)})
            await msg.nak(delay=exc.delay)
        except Exception:
            outcome = "error"
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            log.exception("handler failed", extra={"orderId": event.order_id, "event": kind, "delivery": delivered})
            await msg.nak(delay=min(30.0, 0.5 * 2 ** min(delivered, 6)))
        finally:
            heartbeat.cancel()
            metrics.EVENTS_HANDLED.labels(metrics.service(), kind, outcome).inc()
            metrics.EVENT_DURATION.labels(metrics.service(), kind).observe(time.perf_counter() - started)

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._spec.ack_wait / 3)
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
