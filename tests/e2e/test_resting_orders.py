"""Limit and sniper orders, expiry, cancellation and restarts, with the services as processes."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import httpx
import websockets

from services.router.resting import read_snapshot
from shared.market.model import Market
from shared.retention import DEFAULT_MAX_BYTES
from shared.topology import Topology
from tests.e2e.client import stream, submit
from tests.e2e.conftest import E2E_ENV, own_stack, ROOT, Stack
from tests.e2e.foresight import IMMUNE_SLIPPAGE_BPS
from tests.e2e.market_lookahead import next_crossing, slot_clock
from tests.helpers import eventually

SLOT_MS = int(E2E_ENV["SLOT_MS"])
# Retries after transient chain failures are the market-order suite's subject; here every
# fired order must reach the one outcome its test expects, so the chain never fails.
NO_TRANSIENT_FAILURES = {"CHAIN_FAILURE_RATE": "0"}
# Routers save their book every second, so a restart here re-arms from a snapshot.
SNAPSHOT_EVERY_SECOND = {"BOOK_SNAPSHOT_INTERVAL_S": "1"}


stack = own_stack({**NO_TRANSIENT_FAILURES, **SNAPSHOT_EVERY_SECOND})


def limit_body(crossing, **extra):
    # The limit is the order's only floor (slippage from the quote at the trigger would add a
    # second one the look-ahead does not check), and the crossing holds it until landing.
    return {"orderType": "limit", "tokenIn": crossing.token_in, "tokenOut": crossing.token_out,
            "amount": crossing.amount, "limitPrice": crossing.limit_price, "slippageBps": IMMUNE_SLIPPAGE_BPS,
            **extra}


async def status_of(client: httpx.AsyncClient, order_id: str) -> str:
    return (await client.get(f"/api/orders/{order_id}")).json()["status"]


async def test_a_limit_order_rests_until_the_price_crosses_then_fires_and_confirms(stack):
    # The price must hold from the trigger to the landing: two seconds, room for a loaded machine.
    crossing = await next_crossing(Market(42), slot_clock(SLOT_MS), quiet_slots=30, within_slots=300, hold_slots=40)
    async with stack.client(timeout=30) as client:
        order = await submit(client, limit_body(crossing))
        assert order["floorOut"] is not None
        await eventually(lambda: _is(client, order["orderId"], "open"), message="order resting")
        messages, code = await stream(stack, order["orderId"], timeout=60)
        view = (await client.get(f"/api/orders/{order['orderId']}")).json()
    events = [m for m in messages if m["type"] != "connection"]
    kinds = [m["event"] for m in events]
    assert kinds[:2] == ["OrderAccepted", "OrderOpened"] and events[1]["status"] == "open"
    assert kinds.count("OrderTriggered") == 1
    triggered = events[kinds.index("OrderTriggered")]
    assert triggered["data"]["slot"] >= crossing.first_slot
    assert events[-1]["status"] == "confirmed" and code == 1000, (events[-1], triggered, crossing)
    assert view["limitPrice"] == crossing.limit_price and view["timeInForce"] == "GTC"


async def test_a_good_till_date_order_the_market_never_reaches_expires_with_a_reason(stack):
    expires = int(time.time() * 1000) + 1500
    async with stack.client(timeout=30) as client:
        order = await submit(client, {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                      "limitPrice": "100000", "timeInForce": "GTD", "expiresAt": expires})
        messages, code = await stream(stack, order["orderId"], timeout=30)
    assert [m["status"] for m in messages[1:]] == ["pending", "open", "expired"] and code == 1000
    assert messages[-1]["event"] == "OrderExpired" and "expiresAt" in messages[-1]["message"]


async def test_immediate_or_cancel_executes_now_or_expires_at_once(stack):
    async with stack.client(timeout=30) as client:
        unreachable = await submit(client, {"orderType": "limit", "timeInForce": "IOC", "tokenIn": "SOL",
                                            "tokenOut": "USDC", "amount": "1", "limitPrice": "100000"})
        reachable = await submit(client, {"orderType": "limit", "timeInForce": "IOC", "tokenIn": "SOL",
                                          "tokenOut": "USDC", "amount": "1", "limitPrice": "1",
                                          "slippageBps": IMMUNE_SLIPPAGE_BPS})
        expired, _ = await stream(stack, unreachable["orderId"])
        executed, _ = await stream(stack, reachable["orderId"])
    assert [m["status"] for m in expired[1:]] == ["pending", "routing", "expired"]
    # The reason speaks token units, as every amount outside does: 1 SOL pays about 150 USDC.
    assert re.search(r"immediate-or-cancel: the best route pays \d{2,3}\.\d+ USDC, below the limit's 100000 USDC$",
                     expired[-1]["message"]), expired[-1]["message"]
    assert "OrderOpened" not in [m["event"] for m in executed[1:]] and executed[-1]["status"] == "confirmed"


async def test_a_sniper_order_fires_in_the_first_slot_after_its_pool_launches(stack):
    async with stack.client(timeout=30) as client:
        order = await submit(client, {"orderType": "sniper", "tokenIn": "USDC", "tokenOut": "PUMP", "amount": "20",
                                      "slippageBps": IMMUNE_SLIPPAGE_BPS})
        await eventually(lambda: _is(client, order["orderId"], "open"), message="sniper resting")
        launch = subprocess.run(
            [sys.executable, "-m", "tools.launch", "PUMP-USDC", "--price", "0.002", "--depth", "50000",
             "--nats-url", stack.env["NATS_URL"], "--namespace", stack.env["ENGINE_NAMESPACE"], "--json"],
            cwd=ROOT, env={**os.environ, **stack.env, **stack.admin_env}, capture_output=True, text=True, timeout=30,
        )
        assert launch.returncode == 0, launch.stderr
        messages, code = await stream(stack, order["orderId"], timeout=30)
    events = messages[1:]
    triggered = next(m for m in events if m["event"] == "OrderTriggered")
    launched_slot = json.loads(launch.stdout)["launch"]["listedAtSlot"]
    # Slots are 50 ms here: a loaded two-core machine can hold a trigger tick back a few.
    assert launched_slot <= triggered["data"]["slot"] <= launched_slot + 6
    assert events[-1]["status"] == "confirmed" and code == 1000


async def _is(client, order_id, status):
    return await status_of(client, order_id) == status


async def test_resting_orders_survive_a_restart_of_router_and_executor_and_fire_once(stack):
    # Eight orders fire together just after two restarts: on a loaded machine landing can take
    # seconds, so the price must hold for 4 s from the first crossing.
    crossing = await next_crossing(Market(42), slot_clock(SLOT_MS), quiet_slots=120, within_slots=600, hold_slots=80)
    async with stack.client(timeout=30) as client:
        orders = [await submit(client, limit_body(crossing)) for _ in range(8)]
        for order in orders:
            await eventually(lambda o=order: _is(client, o["orderId"], "open"), message="resting")
        ids = {o["orderId"] for o in orders}
        await eventually(lambda: _snapshot_holds(stack, ids), timeout=20, message="a snapshot holds the orders")
        assert stack.stop("router") == 0 and stack.stop("executor") == 0
        stack.start("router")
        stack.start("executor")
        await stack.wait_ready("router", "executor")
        rearmed = httpx.get(f"http://127.0.0.1:{stack.ops_ports['router']}/metrics").text
        results = await asyncio.gather(*(stream(stack, o["orderId"], timeout=60) for o in orders))
    assert 'engine_book_rearm_seconds{service="router",source="snapshot"}' in rearmed
    for messages, code in results:
        kinds = [m["event"] for m in messages[1:]]
        assert kinds.count("OrderTriggered") == 1 and kinds.count("OrderRouted") == 1
        assert messages[-1]["status"] == "confirmed" and code == 1000, messages[-1]["message"]


async def _snapshot_holds(stack: Stack, order_ids: set[str]) -> bool:
    """Whether the routers' latest book snapshot holds every one of `order_ids` resting."""
    nc = await stack.admin_nats()
    try:
        store = await nc.jetstream().object_store(Topology(namespace=stack.env["ENGINE_NAMESPACE"]).book_bucket)
        snapshot = await read_snapshot(store)
        return snapshot is not None and order_ids <= {order.order_id for order in snapshot.resting}
    finally:
        await nc.close()


async def test_the_order_logs_usage_and_limits_are_exported_by_the_projector(stack):
    async def exported() -> str:
        async with httpx.AsyncClient() as ops:
            return (await ops.get(f"http://127.0.0.1:{stack.ops_ports['projector']}/metrics")).text

    stream_name = Topology(namespace=stack.env["ENGINE_NAMESPACE"]).orders_stream
    limit = f'engine_stream_max_bytes{{service="projector",stream="{stream_name}"}} {float(DEFAULT_MAX_BYTES):.9e}'
    text = await eventually(lambda: _containing(exported, limit), message="the projector samples the order log")
    assert f'engine_stream_max_age_seconds{{service="projector",stream="{stream_name}"}} 2.7648e+06' in text
    assert f'engine_stream_messages{{service="projector",stream="{stream_name}"}}' in text


async def _containing(fetch, needle: str) -> str | None:
    text = await fetch()
    return text if needle in text else None


async def test_cancel_is_idempotent_and_refused_once_the_order_is_finished(stack):
    async with stack.client(timeout=30) as client:
        resting = await submit(client, {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                        "limitPrice": "100000"})
        await eventually(lambda: _is(client, resting["orderId"], "open"), message="resting")
        first = await client.delete(f"/api/orders/{resting['orderId']}")
        again = await client.delete(f"/api/orders/{resting['orderId']}")
        done = await submit(client, {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1",
                                     "slippageBps": IMMUNE_SLIPPAGE_BPS})
        await stream(stack, done["orderId"])
        late = await client.delete(f"/api/orders/{done['orderId']}")
        missing = await client.delete("/api/orders/0190aaaa-0000-7000-8000-000000000000")
    assert first.status_code == 200 and first.json()["status"] == "cancelled" and first.json()["cancelled"] is True
    assert again.status_code == 200 and again.json()["cancelled"] is False
    assert late.status_code == 409 and late.json()["status"] == "confirmed"
    assert missing.status_code == 404


async def test_routes_without_a_direct_pool_hop_and_large_orders_split(stack):
    async with stack.client(timeout=30) as client:
        hop = await submit(client, {"tokenIn": "JUP", "tokenOut": "SOL", "amount": "500"})
        big = await submit(client, {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "20000", "slippageBps": 500})
        await stream(stack, hop["orderId"])
        await stream(stack, big["orderId"])
        hop_view = (await client.get(f"/api/orders/{hop['orderId']}")).json()
        big_view = (await client.get(f"/api/orders/{big['orderId']}")).json()
    assert hop_view["routeKind"] == "multihop" and len(hop_view["paths"][0]["legs"]) == 2
    assert big_view["routeKind"] == "split" and len(big_view["paths"]) == 2 and big_view["gainBps"] > 0
    assert len(big_view["candidates"]) >= 3


async def test_quotes_are_served_over_http_and_streamed(stack):
    async with stack.client(timeout=30) as client:

        async def quoted():
            response = await client.get("/api/quotes", params={"pair": "SOL-USDC"})
            return response.status_code == 200 and len(response.json()["quotes"]) == 2

        await eventually(quoted, message="both venues quoted")
        bad = await client.get("/api/quotes", params={"pair": "SOL"})
        unlisted = await client.get("/api/quotes", params={"pair": "POPCAT-USDT"})
    assert bad.status_code == 400 and bad.json()["field"] == "pair"
    assert unlisted.status_code == 404
    async with websockets.connect(f"{stack.ws_url}/api/quotes/stream?pair=SOL-USDC", additional_headers=stack.headers) as ws:
        first = [await asyncio.wait_for(ws.recv(), 5) for _ in range(4)]
    kinds = [json.loads(m)["type"] for m in first]
    assert kinds[0] == "connection" and kinds[1:] == ["quote"] * 3
