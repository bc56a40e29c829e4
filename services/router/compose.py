"""The router's composition root: its four jobs built from settings and adapters.

- **routing** (`OrderRouting`): the order consumer and the resume nudges feed `Router`, which
  routes each accepted order and finishes a fired one the trigger engine left;
- **quote feed** (`QuoteFeed`): every pool's quote for one unit of the base token, each
  interval, when it moved (the quotes an order was routed on are in its `OrderRouted`);
- **trigger engine** (`TriggerEngine`): the resting book followed from the log, and the
  slot loop that fires and expires what rests in it;
- **launch publisher** (`LaunchPublisher`): the configured launch schedule published when
  due, every launch learnt into the market, and snipers woken the moment a pool lists.

They share one market, one slot clock and one event log. `build` wires them over a NATS
connection for `__main__` and for tests; `router` builds the routing handler alone, over
whatever event log a test gives its emitter.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

from nats.aio.client import Client
from nats.js import JetStreamContext

from services.router.book import LimitBook
from services.router.feed import QuoteFeed
from services.router.handler import Router
from services.router.resting import BookFeed
from services.router.settings import RouterSettings
from services.router.triggers import Triggers
from shared import ops, resume
from shared.chain import SlotClock
from shared.clock import Clock
from shared.consumer import Consumer
from shared.durables import order_spec
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.launchlog import LaunchRegistry, run_schedule
from shared.market.launches import PoolLaunch
from shared.market.model import Market
from shared.market.schedule import parse_schedule
from shared.setup import require_streams
from shared.topology import Topology

__all__ = ["LaunchPublisher", "OrderRouting", "RouterService", "TriggerEngine", "build", "order_consumer", "router"]


def router(settings: RouterSettings, emitter: Emitter, market: Market, **options) -> Router:
    """The routing handler: quotes with the settings' latency, on the settings' slot clock."""
    return Router(emitter, market, settings.slot_clock(emitter.clock), quote_delay_ms=settings.quote_delay_ms(),
                  **options)


def order_consumer(js: JetStreamContext, topology: Topology, settings: RouterSettings, handler: Router) -> Consumer:
    """The durable consumer of the order events the router acts on."""
    return Consumer(js, topology.orders_stream, order_spec(topology, "router"), handler.handle,
                    concurrency=settings.concurrency)


class OrderRouting:
    """Routes every order the consumers deliver: accepted orders, and resume nudges."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self._consumers = tuple(consumers)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(consumer.run(stop) for consumer in self._consumers))


class TriggerEngine:
    """The resting book, folded from the log, and the loop that fires and expires its orders."""

    def __init__(self, book: BookFeed, triggers: Triggers, slots: SlotClock) -> None:
        self.book = book
        self.triggers = triggers
        self._slots = slots

    @property
    def armed(self) -> asyncio.Event:
        """Set once the book holds every order the log had open at start."""
        return self.book.caught_up

    async def start(self) -> None:
        await self.book.start()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(self.triggers.run(stop, self.armed), self.book.run(stop))
        finally:
            await self.book.stop()

    async def pool_listed(self, launch: PoolLaunch) -> None:
        """Check the snipers now: the slot loop would find the pool within a slot, this in its first."""
        await self.armed.wait()
        self.triggers.tick(max(self._slots.current_slot(), launch.listed_at_slot))


class LaunchPublisher:
    """Publishes the launch schedule, learns every launch into the market, and wakes whoever waits on one."""

    def __init__(self, js: JetStreamContext, topology: Topology, registry: LaunchRegistry,
                 schedule: Sequence[PoolLaunch], slots: SlotClock,
                 on_listed: Callable[[PoolLaunch], Awaitable[None]]) -> None:
        self.registry = registry
        self._js = js
        self._topology = topology
        self._schedule = tuple(schedule)
        self._slots = slots
        self._on_listed = on_listed

    async def start(self) -> None:
        """Return once every launch already in the log is known (and in the market)."""
        await self.registry.start()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(
            run_schedule(self._js, self._topology, self._schedule, self._slots, stop),
            self._watch(),
            self._stop_when(stop),
        )

    async def _watch(self) -> None:
        async for launch in self.registry.watch():
            await self._on_listed(launch)

    async def _stop_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self.registry.stop()  # ends the watcher


class RouterService:
    """The four parts of one router, started and run together."""

    def __init__(self, nc: Client, routing: OrderRouting, quotes: QuoteFeed, triggers: TriggerEngine,
                 launches: LaunchPublisher, *, quote_interval_ms: int) -> None:
        self.routing = routing
        self.quotes = quotes
        self.triggers = triggers
        self.launches = launches
        self._nc = nc
        self._quote_interval_ms = quote_interval_ms

    async def start(self) -> None:
        # Launches first: the market must list every launched pool before anything routes.
        await self.launches.start()
        await self.triggers.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until ``stop``."""
        await asyncio.gather(
            self.routing.run(stop),
            self.quotes.run(self._quote_interval_ms, stop),
            self.triggers.run(stop),
            self.launches.run(stop),
        )

    def checks(self) -> dict[str, ops.Check]:
        """Readiness: connected to NATS, and the resting book armed."""

        async def nats() -> bool:
            return self._nc.is_connected

        async def book() -> bool:
            return self.triggers.armed.is_set()

        return {"nats": nats, "book": book}


async def build(settings: RouterSettings, nc: Client, clock: Clock) -> RouterService:
    """Every part of the router over ``nc``, its streams checked, ready to `start`."""
    topology = Topology(namespace=settings.engine_namespace)
    js = nc.jetstream()
    await require_streams(js, topology.orders_stream, topology.quotes_stream, topology.launches()[0])
    market = Market(settings.sim_seed)
    slots = settings.slot_clock(clock)
    emitter = Emitter(EventLog(nc, js, topology), Ids(clock), clock)

    quotes = QuoteFeed(nc, topology, market, slots, clock)
    handler = router(settings, emitter, market)
    routing = OrderRouting([
        order_consumer(js, topology, settings, handler),
        resume.consumer(js, topology, "router", handler.resume),
    ])
    book = BookFeed(js, topology, LimitBook(), clock, snapshot_every_s=settings.book_snapshot_interval_s)
    triggers = TriggerEngine(book, Triggers(book.book, handler, market, slots, clock), slots)
    schedule = parse_schedule(settings.sim_launches, slots.current_slot(), settings.slot_ms, listed=market.pairs())
    registry = LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch)
    launches = LaunchPublisher(js, topology, registry, schedule, slots, triggers.pool_listed)
    return RouterService(nc, routing, quotes, triggers, launches, quote_interval_ms=settings.quote_feed_interval_ms)
