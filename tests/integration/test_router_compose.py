"""The router as its composition root builds it: the four parts over one connection, against
a real nats-server."""

from __future__ import annotations

import asyncio

import msgspec

from services.router import compose
from services.router.settings import RouterSettings
from shared import events as ev
from shared.clock import SystemClock
from shared.eventlog import EventLog
from tests.helpers import eventually
from tests.kit import SPEC, make

SNIPER = msgspec.structs.replace(SPEC, order_type="sniper", token_in="USDC", token_out="PUMP", amount_in=10**6,
                                 slippage_bps=300)


async def test_a_built_router_routes_orders_publishes_quotes_and_fires_a_sniper_when_its_pool_launches(
    jetstream, namespace
):
    nc, js, topology = jetstream
    settings = RouterSettings(engine_namespace=namespace, sim_profile="zero", sim_launches="PUMP-USDC@+4s",
                              quote_feed_interval_ms=100, book_snapshot_interval_s=0)
    quotes = await nc.subscribe(topology.quote_subject("SOL-USDC", "*"))
    log = EventLog(nc, js, topology)
    router = await compose.build(settings, nc, SystemClock())
    await router.start()
    stop = asyncio.Event()
    running = asyncio.create_task(router.run(stop))
    try:
        now = SystemClock().now_ms()
        await log.append(make(ev.OrderAccepted, "market", order=SPEC, at=now), expected_stream_seq=0)
        await log.append(make(ev.OrderAccepted, "sniper", order=SNIPER, at=now), expected_stream_seq=0)

        async def kinds(order_id: str) -> list[str]:
            return [type(s.event).__name__ for s in (await log.load(order_id)).events]

        await eventually(lambda: router.triggers.armed.is_set(), message="book armed")
        quote = msgspec.json.decode((await quotes.next_msg(timeout=5)).data)
        assert quote["pair"] == "SOL-USDC" and quote["fillable"]
        await eventually(lambda: _has(kinds("market"), "OrderRouted"), message="market order routed")
        # Accepted before its pool exists: it rests until the scheduled launch lists it.
        await eventually(lambda: _has(kinds("sniper"), "OrderOpened"), message="sniper resting")
        assert router.launches.registry.find("USDC", "PUMP") is None
        await eventually(lambda: _has(kinds("sniper"), "OrderRouted"), timeout=15, message="sniper fired")
        assert router.launches.registry.find("USDC", "PUMP") is not None
        assert (await kinds("sniper"))[:4] == ["OrderAccepted", "OrderOpened", "OrderTriggered", "OrderRouted"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)


async def _has(kinds, kind: str) -> bool:
    return kind in await kinds
