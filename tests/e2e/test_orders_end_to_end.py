"""Orders through the four services as real processes."""

import asyncio

import asyncpg
import pytest

from shared import events as ev
from shared.eventlog import EventLog
from shared.topology import Topology
from tests.e2e.client import TERMINAL, market, stream, submit
from tests.helpers import eventually


async def test_a_hundred_concurrent_orders_all_reach_a_terminal_state_with_complete_streams(stack):
    async with stack.client(timeout=30) as client:
        pairs = [("SOL", "USDC", "0.25"), ("USDC", "SOL", "40"), ("BONK", "SOL", "1000000"), ("JUP", "USDC", "12")]
        bodies = [market(amount, tin, tout) for tin, tout, amount in (pairs[i % len(pairs)] for i in range(100))]
        accepted = await asyncio.gather(*(submit(client, b) for b in bodies))
        assert all(a["status"] == "pending" for a in accepted)
        streams = await asyncio.gather(*(stream(stack, a["orderId"], timeout=60) for a in accepted))
    statuses = {}
    for messages, code in streams:
        assert messages[0]["type"] == "connection"
        events = messages[1:]
        assert [m["seq"] for m in events] == list(range(1, len(events) + 1)), "no gap, no duplicate"
        assert events[-1]["status"] in TERMINAL and code == 1000
        assert events[0]["event"] == "OrderAccepted" and events[0]["status"] == "pending"
        statuses[events[-1]["status"]] = statuses.get(events[-1]["status"], 0) + 1
        if events[-1]["status"] == "confirmed":
            path = [m["status"] for m in events]
            for status in ("pending", "routing", "building", "submitted", "confirmed"):
                assert status in path
    assert statuses.get("confirmed", 0) >= 80, statuses


async def test_clients_connecting_before_during_and_after_an_order_see_the_same_sequence(stack):
    key = "bdx-" + stack.schema
    order_id = await stack.keyed_order_id(key)
    async with stack.client(timeout=30) as client:
        before = asyncio.create_task(stream(stack, order_id))
        seam = asyncio.create_task(stream(stack, order_id, path="status"))
        await asyncio.sleep(0.2)  # let both connect before the order exists
        accepted = await submit(client, market("0.3", clientOrderId=key))
        assert accepted["orderId"] == order_id
        during = []
        for delay in (0.0, 0.03, 0.08, 0.15, 0.3):
            await asyncio.sleep(delay)
            during.append(asyncio.create_task(stream(stack, order_id)))
        reference, code = await before
        assert code == 1000
        after, after_code = await stream(stack, order_id)
    events = reference[1:]
    assert events and [m["seq"] for m in events] == list(range(1, len(events) + 1))
    for other, other_code in [await seam, *[await t for t in during], (after, after_code)]:
        assert other_code == 1000 and other[0]["type"] == "connection"
        assert other[1:] == events


async def test_resuming_after_a_sequence_number_sends_only_what_follows(stack):
    async with stack.client(timeout=30) as client:
        accepted = await submit(client, market("0.1"))
        full, _ = await stream(stack, accepted["orderId"])
        resumed, code = await stream(stack, accepted["orderId"], after_seq=3)
    assert code == 1000 and resumed[0]["type"] == "connection" and resumed[0]["afterSeq"] == 3
    assert resumed[1:] == [m for m in full[1:] if m["seq"] > 3]


async def test_the_read_model_matches_the_log(stack):
    async with stack.client(timeout=30) as client:
        orders = await asyncio.gather(*(submit(client, market("0.05")) for _ in range(20)))
        for accepted in orders:
            await stream(stack, accepted["orderId"])
        nc = await stack.admin_nats()
        log = EventLog(nc, nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]))
        db = await asyncpg.connect(stack.database_url, server_settings={"search_path": stack.schema})
        try:
            for accepted in orders:
                order_id = accepted["orderId"]
                logged = await log.load(order_id)

                async def projected():
                    row = await db.fetchrow("select last_seq, status from orders where order_id = $1", order_id)
                    return row is not None and row["last_seq"] == logged.state.seq

                await eventually(projected, message=f"order {order_id} projected")
                rows = await db.fetch("select payload from order_events where order_id = $1 order by seq", order_id)
                assert [ev.decode(r["payload"].encode()) for r in rows] == [s.event for s in logged.events]
                view = (await client.get(f"/api/orders/{order_id}")).json()
                assert view["status"] == logged.state.status and view["lastSeq"] == logged.state.seq
                history = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]
                assert [m["seq"] for m in history] == [s.event.seq for s in logged.events]
        finally:
            await db.close()
            await nc.close()


async def test_orders_are_listed_newest_first_with_a_cursor(stack):
    async with stack.client(timeout=30) as client:
        ids = [(await submit(client, market("0.01")))["orderId"] for _ in range(5)]

        async def listed():
            page = (await client.get("/api/orders", params={"limit": 100})).json()["orders"]
            return all(i in {o["orderId"] for o in page} for i in ids)

        await eventually(listed, message="orders projected")
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/api/orders", params=params)).json()
            seen += [o["orderId"] for o in page["orders"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        newest_first = [i for i in seen if i in ids]
        assert newest_first == list(reversed(ids))


async def test_the_gateway_reads_with_a_role_that_cannot_write_and_router_and_executor_have_no_database(stack):
    assert all("DATABASE_URL" not in {**stack.env, **stack.service_env(name)} for name in ("router", "executor"))
    db = await asyncpg.connect(stack.service_env("gateway")["DATABASE_URL"], server_settings={"search_path": stack.schema})
    try:
        assert await db.fetchval("select count(*) from orders") >= 0
        for statement in ("delete from orders", "update projector_positions set stream_seq = 0", "truncate order_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await db.execute(statement)
    finally:
        await db.close()
