"""python -m services.router: quotes every venue and routes each accepted order.

Two durable consumers feed it: order events (OrderAccepted, and OrderTriggered so a fired
order the trigger loop could not route is routed all the same) and its resume nudges.
"""

from __future__ import annotations

import asyncio

from services.router.book import LimitBook
from services.router.feed import QuoteFeed
from services.router.handler import Router
from services.router.resting import BookFeed
from services.router.settings import RouterSettings
from services.router.triggers import Triggers
from shared import ops, resume, runtime
from shared.clock import SystemClock
from shared.consumer import Consumer, order_spec
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.launchlog import LaunchRegistry, run_schedule
from shared.market.model import Market
from shared.market.schedule import parse_schedule
from shared.settings import load
from shared.setup import require_streams
from shared.topology import Topology


def main() -> None:
    settings = load(RouterSettings)
    runtime.run("router", settings, lambda stop: serve(settings, stop))


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    topology = Topology(namespace=settings.engine_namespace)
    clock = SystemClock()
    async with runtime.nats_connection(settings, "router") as nc:
        js = nc.jetstream()
        await require_streams(js, topology.orders_stream, topology.quotes_stream, topology.launches()[0])
        market = Market(settings.sim_seed)
        slots = settings.slot_clock(clock)
        schedule = parse_schedule(settings.sim_launches, slots.current_slot(), settings.slot_ms, listed=market.pairs())
        launches = LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch)
        await launches.start()
        feed = QuoteFeed(nc, topology, market, slots, clock)
        router = Router(
            Emitter(EventLog(nc, js, topology), Ids(clock), clock),
            market,
            slots,
            feed,
            quote_delay_ms=settings.quote_delay_ms(),
        )
        consumer = Consumer(js, topology.orders_stream, order_spec(topology, "router"), router.handle,
                            concurrency=settings.concurrency)
        nudges = resume.consumer(js, topology, "router", router.resume)
        book_feed = BookFeed(js, topology, LimitBook(), clock, snapshot_every_s=settings.book_snapshot_interval_s)
        await book_feed.start()
        triggers = Triggers(book_feed.book, router, market, slots, clock)

        async def nats_ready() -> bool:
            return nc.is_connected

        async def book_armed() -> bool:
            return book_feed.caught_up.is_set()

        app = ops.ops_app("router", {"nats": nats_ready, "book": book_armed})
        async def snipe_on_launch() -> None:
            # The slot loop would find a new pool within a slot; a launch announced now is
            # checked now, so sniper orders go out in the pool's first slot.
            async for launch in launches.watch():
                await book_feed.caught_up.wait()
                triggers.tick(max(slots.current_slot(), launch.listed_at_slot))

        try:
            await asyncio.gather(
                consumer.run(stop),
                nudges.run(stop),
                feed.run(settings.quote_feed_interval_ms, stop),
                triggers.run(stop, book_feed.caught_up),
                book_feed.run(stop),
                run_schedule(js, topology, schedule, slots, stop),
                snipe_on_launch(),
                ops.serve(app, settings.ops_host, settings.ops_port, stop),
                _stop_launches(stop, launches),
            )
        finally:
            await book_feed.stop()


async def _stop_launches(stop: asyncio.Event, launches: LaunchRegistry) -> None:
    await stop.wait()
    await launches.stop()  # ends the launch watcher


if __name__ == "__main__":
    main()
