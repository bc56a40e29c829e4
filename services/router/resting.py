"""Resting orders: the book every router replica keeps, rebuilt from the log.

Each replica follows the whole order stream with its own ordered consumer, from the
first message, so after any restart its book holds exactly the orders the log says are
open: nothing is re-armed from memory. Only the events that change the book are
decoded; the rest are recognised by their type header and dropped.
"""

from __future__ import annotations

import asyncio
import logging

import nats.js.api as api
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.router.book import LimitBook, RestingOrder
from shared import events as ev
from shared.eventlog import EVENT_TYPE_HEADER
from shared.topology import Topology

log = logging.getLogger(__name__)

# Events after which an order is no longer in (or on its way into) the book.
_LEAVES = {"OrderTriggered", "OrderCancelled", "OrderExpired", "OrderFailed", "RoutingStarted", "OrderRouted"}
_WATCHED = {"OrderAccepted", "OrderOpened"} | _LEAVES


def resting_order(spec: ev.OrderSpec, order_id: str) -> RestingOrder:
    return RestingOrder(
        order_id=order_id,
        token_in=spec.token_in,
        token_out=spec.token_out,
        amount_in=spec.amount_in,
        min_out=spec.min_out or 0,
        expires_at=spec.expires_at,
        kind="sniper" if spec.order_type == "sniper" else "limit",
    )


class BookFeed:
    """Folds the order stream into a `LimitBook`."""

    def __init__(self, js: JetStreamContext, topology: Topology, book: LimitBook):
        self._js = js
        self._topology = topology
        self.book = book
        self._specs: dict[str, ev.OrderSpec] = {}  # accepted resting-type orders not yet open
        self._caught_up = asyncio.Event()
        self._tail = 0
        self._seen = 0
        self._sub = None

    @property
    def caught_up(self) -> asyncio.Event:
        """Set once the feed has read everything the stream held when it started."""
        return self._caught_up

    async def start(self) -> None:
        info = await self._js.stream_info(self._topology.orders_stream)
        self._tail = info.state.last_seq
        if self._tail == 0:
            self._caught_up.set()
        self._sub = await self._js.subscribe(
            self._topology.orders_wildcard,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
            stream=self._topology.orders_stream,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # connection already closing
                pass

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        kind = (msg.headers or {}).get(EVENT_TYPE_HEADER)
        if kind in _WATCHED:
            self.apply(ev.decode(msg.data))
        if not self._caught_up.is_set() and seq >= self._tail:
            self._caught_up.set()
            log.info("book armed from the log", extra={"resting": len(self.book), "streamSeq": seq})

    def apply(self, event: ev.OrderEvent) -> None:
        """Update the book with one event (pure apart from the book itself)."""
        match event:
            case ev.OrderAccepted(order=spec) if spec.order_type in ("limit", "sniper"):
                self._specs[event.order_id] = spec
            case ev.OrderOpened():
                spec = self._specs.pop(event.order_id, None)
                if spec is not None:
                    self.book.add(resting_order(spec, event.order_id))
            case _ if type(event).__name__ in _LEAVES:
                self._specs.pop(event.order_id, None)
                self.book.remove(event.order_id)
