"""Orders left behind are finished, and a refused event breaks no read, with the services as processes."""

from __future__ import annotations


from decimal import Decimal

import asyncpg
import httpx
import msgspec

from shared import events as ev
from shared.eventlog import EventLog
from shared.topology import Topology
from engine_client import MarketOrder
from tests.e2e.client import engine_of, wait_terminal
from tests.e2e.conftest import own_stack, Stack
from tests.helpers import ack_unhandled, eventually
from tests.kit import SPEC, make

# The reconciler looks often and calls an order stalled after a second of silence.
SPEC_AT = 1_700_000_000_000
RECONCILE_FAST = {"RECONCILE_INTERVAL_S": "0.2", "RECONCILE_STALL_S": "1", "CHAIN_FAILURE_RATE": "0"}


stack = own_stack(RECONCILE_FAST)


def market(amount: str) -> MarketOrder:
    return MarketOrder(token_in="SOL", token_out="USDC", amount=Decimal(amount))


def topology_of(stack: Stack) -> Topology:
    return Topology(namespace=stack.env["ENGINE_NAMESPACE"])


async def ack_everything(stack: Stack, durable: str) -> None:
    """Take and ack whatever the durable holds, as a service that died after acking would have."""
    nc = await stack.admin_nats()
    t = topology_of(stack)
    js = nc.jetstream()

    async def empty(_acked: int) -> bool:
        info = await js.consumer_info(t.orders_stream, durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    try:
        await ack_unhandled(js, t.orders_stream, durable, empty)
    finally:
        await nc.close()


async def nudges_sent(stack: Stack, role: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ops_ports['projector']}") as ops:
        text = (await ops.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("engine_resume_nudges_total{") and f'role="{role}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_an_accepted_order_whose_router_acked_it_and_died_is_nudged_and_confirmed(stack):
    assert stack.stop("router") == 0
    async with engine_of(stack, timeout=30) as engine:
        order = await engine.submit(market("0.25"))
        await ack_everything(stack, "router")  # the acceptance was taken, and then the router died
        stack.start("router")
        await stack.wait_ready("router")
        view = await wait_terminal(engine, order.order_id, timeout=45)
    assert view.status == "confirmed"
    assert await nudges_sent(stack, "router") >= 1


async def test_a_refused_event_in_the_log_is_kept_out_of_the_history_and_every_read_answers(stack):
    async with engine_of(stack, timeout=30) as engine:
        order_id = (await engine.submit(market("0.1"))).order_id
        view = await wait_terminal(engine, order_id)
        assert view.status == "confirmed"
        last_seq = view.last_seq
        nc = await stack.admin_nats()
        try:
            log = EventLog(nc, nc.jetstream(), topology_of(stack))
            history = await log.read(order_id)
            refused = ev.RoutingStarted(order_id=order_id, seq=last_seq + 1, event_id="refused",
                                        occurred_at=history[-1].event.occurred_at, correlation_id=order_id)
            await log.append(refused, expected_stream_seq=history[-1].stream_seq)  # a fault: nothing checked it
        finally:
            await nc.close()
        conn = await asyncpg.connect(stack.database_url)
        try:
            async def rejected() -> bool:
                return bool(await conn.fetchval(
                    f'select count(*) from "{stack.schema}".projector_rejects where order_id = $1', order_id))

            await eventually(rejected, timeout=15, message="the projector refused the event")
            stored = await conn.fetchval(
                f'select count(*) from "{stack.schema}".order_events where order_id = $1', order_id)
        finally:
            await conn.close()
        assert stored == last_seq
        one = await engine.get(order_id)
        events = await engine.events(order_id)
        listing = await engine.list(limit=100)
        watched = [event async for event in engine.watch(order_id)]
    assert (one.status, one.last_seq) == ("confirmed", last_seq)
    assert [e.seq for e in events] == list(range(1, last_seq + 1))
    assert order_id in [o.order_id for o in listing.orders]
    assert [e.seq for e in watched] == list(range(1, last_seq + 1))


async def test_an_order_only_the_log_holds_reads_without_its_refused_event(stack):
    # The read model knows nothing of this order, and no router moves it while it is written.
    assert stack.stop("projector") == 0 and stack.stop("router") == 0
    try:
        spec = msgspec.structs.replace(SPEC, account="e2e")
        order_id = "log-only-refused"
        bogus = make(ev.OrderConfirmed, order_id, seq=3, at=SPEC_AT + 30)  # no transaction was ever built
        nc = await stack.admin_nats()
        try:
            log = EventLog(nc, nc.jetstream(), topology_of(stack))
            last = 0
            for event in (make(ev.OrderAccepted, order_id, order=spec, at=SPEC_AT),
                          make(ev.RoutingStarted, order_id, seq=2, at=SPEC_AT + 10), bogus):
                last = (await log.append(event, expected_stream_seq=last)).stream_seq
        finally:
            await nc.close()
        async with engine_of(stack, timeout=30) as engine:
            one = await engine.get(order_id)
            events = await engine.events(order_id)
        assert (one.status, one.last_seq) == ("routing", 2)
        assert [e.event for e in events] == ["OrderAccepted", "RoutingStarted"]
    finally:
        stack.start("projector")
        stack.start("router")
        await stack.wait_ready("projector", "router")
