"""python -m services.router: quotes every venue and routes each accepted order."""

from __future__ import annotations

import asyncio

from services.router.book import LimitBook
from services.router.feed import QuoteFeed
from services.router.handler import Router
from services.router.resting import BookFeed
from services.router.settings import RouterSettings
from services.router.triggers import Triggers
from shared import ops, runtime
from shared.clock import SystemClock
from shared.consumer import Consumer, ConsumerSpec
from shared.emit import Emitter
from shared.eventlog import EventLog, ensure_streams
from shared.ids import Ids
from shared.market.model import Market
from shared.settings import load
from shared.topology import Topology


def main() -> None:
    settings = load(RouterSettings)
    runtime.run("router", settings, lambda stop: serve(settings, stop))


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    topology = Topology(namespace=settings.engine_namespace)
    clock = SystemClock()
    async with runtime.nats_connection(settings.nats_url, "router") as nc:
        js = nc.jetstream()
        await ensure_streams(js, topology, replicas=settings.stream_replicas)
        market = Market(settings.sim_seed)
        slots = settings.slot_clock(clock)
        feed = QuoteFeed(nc, topology, market, slots, clock)
        router = Router(
            Emitter(EventLog(nc, js, topology), Ids(clock), clock),
            market,
            slots,
            feed,
            quote_delay_ms=settings.quote_delay_ms(),
        )
        spec = ConsumerSpec(durable="router", filter_subject=topology.orders_wildcard, wants=frozenset({"OrderAccepted"}))
        consumer = Consumer(js, topology.orders_stream, spec, router.handle, concurrency=settings.concurrency)
        book_feed = BookFeed(js, topology, LimitBook())
        await book_feed.start()
        triggers = Triggers(book_feed.book, router, market, slots, clock)

        async def nats_ready() -> bool:
            return nc.is_connected

        async def book_armed() -> bool:
            return book_feed.caught_up.is_set()

        app = ops.ops_app("router", {"nats": nats_ready, "book": book_armed})
        try:
            await asyncio.gather(
                consumer.run(stop),
                feed.run(settings.quote_feed_interval_ms, stop),
                triggers.run(stop, book_feed.caught_up),
                ops.serve(app, settings.ops_host, settings.ops_port, stop),
            )
        finally:
            await book_feed.stop()


if __name__ == "__main__":
    main()
