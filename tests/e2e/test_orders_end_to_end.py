"""Orders through the four services as real processes, each reaching the outcome its id foretells."""

import asyncio

import asyncpg
import pytest

from shared import events as ev
from shared.eventlog import EventLog
from shared.topology import Topology
from tests.e2e.client import market, stream, submit
from tests.e2e.conftest import own_stack
from tests.e2e.foresight import IMMUNE_SLIPPAGE_BPS, Foresight, Outcome
from tests.helpers import eventually

# Transient failures on, as in every e2e stack, drawn per order and attempt, so each order's
# outcome follows from its id. Blockhashes stay valid for 2 s (40 slots of 50 ms), so even on
# a loaded machine no transaction expires between its building and its landing and a draw is
# the only way an attempt fails; a dropped transaction is known dead 2 s after it was built.
LONG_BLOCKHASH_WINDOW = {"BLOCKHASH_TTL_SLOTS": "40"}


stack = own_stack(LONG_BLOCKHASH_WINDOW)


@pytest.fixture(scope="module")
async def foresight(stack) -> Foresight:
    return await Foresight.of(stack)


def order(client_order_id: str, amount: str = "0.3", token_in: str = "SOL", token_out: str = "USDC") -> dict:
    return market(amount, token_in, token_out, clientOrderId=client_order_id, slippageBps=IMMUNE_SLIPPAGE_BPS)


def assert_story(messages: list[dict], code: int | None, expected: Outcome) -> None:
    """The stream told exactly the story the chain's draws foretold, and closed normally."""
    assert messages[0]["type"] == "connection"
    events = messages[1:]
    assert [m["event"] for m in events] == expected.events, (expected, [m["message"] for m in events])
    assert [m["seq"] for m in events] == list(range(1, len(events) + 1)), "no gap, no duplicate"
    assert [m["data"]["kind"] for m in events if m["event"] == "AttemptFailed"] == list(expected.failures)
    assert events[-1]["status"] == expected.status and code == 1000
    assert events[-1]["data"].get("code") == expected.code


def retried_then_confirmed(kind: str):
    return lambda o: not o.exhausted and kind in o.failures


async def test_a_hundred_concurrent_orders_each_reach_the_outcome_their_ids_foretell(stack, foresight):
    # Every path is in the batch: first-time confirmations, a retry after each kind of
    # transient failure, and orders whose every attempt fails.
    wanted = (lambda o: not o.failures, retried_then_confirmed("node_busy"),
              retried_then_confirmed("blockhash_not_found"), retried_then_confirmed("dropped"),
              lambda o: o.exhausted, lambda o: o.exhausted)
    expected = foresight.pick(f"hundred-{stack.schema}", 100, wanted)
    pairs = [("SOL", "USDC", "0.25"), ("USDC", "SOL", "40"), ("BONK", "SOL", "1000000"), ("JUP", "USDC", "12")]
    bodies = [order(key, amount, tin, tout) for key, (tin, tout, amount) in zip(expected, pairs * 25)]
    async with stack.client(timeout=30) as client:
        accepted = await asyncio.gather(*(submit(client, b) for b in bodies))
        assert [a["orderId"] for a in accepted] == [o.order_id for o in expected.values()]
        assert all(a["status"] == "pending" for a in accepted)
        streams = await asyncio.gather(*(stream(stack, a["orderId"], timeout=60) for a in accepted))
    for (messages, code), outcome in zip(streams, expected.values()):
        assert_story(messages, code, outcome)


async def test_clients_connecting_before_during_and_after_an_order_see_the_same_sequence(stack, foresight):
    [(key, expected)] = foresight.pick(f"bdx-{stack.schema}", 1, (retried_then_confirmed("dropped"),)).items()
    async with stack.client(timeout=30) as client:
        first, second = [], []
        before = asyncio.create_task(stream(stack, expected.order_id, received=first))
        seam = asyncio.create_task(stream(stack, expected.order_id, path="status", received=second))
        connected = await eventually(lambda: first and second and [first[0], second[0]], message="both connected")
        assert [m["type"] for m in connected] == ["connection"] * 2 and [m["lastSeq"] for m in connected] == [0, 0]
        accepted = await submit(client, order(key))
        assert accepted["orderId"] == expected.order_id
        during = []
        for seq in range(1, len(expected.events)):  # one more client after each event but the last
            await eventually(lambda: any(m.get("seq", 0) >= seq for m in first), message=f"event {seq} seen")
            during.append(asyncio.create_task(stream(stack, expected.order_id)))
        reference, code = await before
        after, after_code = await stream(stack, expected.order_id)
    assert_story(reference, code, expected)
    for other, other_code in [await seam, *[await t for t in during], (after, after_code)]:
        assert other_code == 1000 and other[0]["type"] == "connection"
        assert other[1:] == reference[1:]


async def test_resuming_after_a_sequence_number_sends_only_what_follows(stack, foresight):
    [(key, expected)] = foresight.pick(f"resume-{stack.schema}", 1).items()
    async with stack.client(timeout=30) as client:
        accepted = await submit(client, order(key, "0.1"))
        full, code = await stream(stack, accepted["orderId"])
        resumed, resumed_code = await stream(stack, accepted["orderId"], after_seq=3)
    assert_story(full, code, expected)
    assert resumed_code == 1000 and resumed[0]["type"] == "connection" and resumed[0]["afterSeq"] == 3
    assert resumed[1:] == [m for m in full[1:] if m["seq"] > 3]


async def test_the_read_model_matches_the_log(stack, foresight):
    expected = foresight.pick(f"model-{stack.schema}", 20, (lambda o: o.exhausted, retried_then_confirmed("dropped")))
    async with stack.client(timeout=30) as client:
        orders = await asyncio.gather(*(submit(client, order(key, "0.05")) for key in expected))
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
                outcome = next(o for o in expected.values() if o.order_id == order_id)
                assert (view["status"], view["failureCode"], view["attempts"]) == (
                    outcome.status, outcome.code, outcome.attempts)
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
