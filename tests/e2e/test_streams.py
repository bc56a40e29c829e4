"""Order and quote streams when live messages are lost and clients leave, against real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from typing import AsyncIterator

import httpx
import websockets

from shared.topology import Topology

from tests.e2e.client import market, stream, submit, wait_terminal
from tests.e2e.conftest import own_stack, Stack
from tests.helpers import eventually, republish_paused

IDLE_CHECK_S = 1.0
RESTING = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000"}


stream_stack = own_stack({"STREAM_IDLE_CHECK_S": str(IDLE_CHECK_S)})  # streams check the log after 1 s of silence


async def gateway_metric(stack: Stack, name: str, **labels: str) -> float:
    """One series of the gateway's /metrics (0 when it has none yet)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{stack.ops_ports['gateway']}/metrics")).text
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{([^}}]*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def gateway_log(stack: Stack) -> str:
    return (stack.logs / "gateway.log").read_text(errors="replace")


@contextlib.asynccontextmanager
async def live_messages_lost(stack: Stack) -> AsyncIterator[None]:
    """While inside, the gateway hears no live message of any order."""
    nc = await stack.admin_nats()
    try:
        async with republish_paused(nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]).orders_stream):
            yield
    finally:
        await nc.close()


def _url(stack: Stack, order_id: str) -> str:
    return f"{stack.ws_url}/api/orders/{order_id}/stream"


async def test_a_stream_whose_terminal_live_message_is_lost_ends_within_the_idle_check(stream_stack):
    stack = stream_stack
    recovered = await gateway_metric(stack, "engine_live_events_recovered_total")
    async with stack.client() as client:
        order = await submit(client, RESTING)
        async with websockets.connect(_url(stack, order["orderId"]), additional_headers=stack.headers) as ws:
            messages = [json.loads(await ws.recv())]
            while messages[-1].get("status") != "open":  # replayed or live: the order rests
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            async with live_messages_lost(stack):
                cancelled = await client.delete(f"/api/orders/{order['orderId']}")
                assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
            started = time.monotonic()
            async with asyncio.timeout(IDLE_CHECK_S + 5):
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for raw in ws:
                        messages.append(json.loads(raw))
            took = time.monotonic() - started
    events = messages[1:]
    assert [m["seq"] for m in events] == list(range(1, len(events) + 1)), "no gap, no duplicate"
    assert events[-1]["event"] == "OrderCancelled" and ws.close_code == 1000
    assert took < IDLE_CHECK_S + 1.5, took
    assert await gateway_metric(stack, "engine_live_events_recovered_total") == recovered + 1


async def test_streams_for_orders_that_do_not_exist_leave_no_watch_behind(stream_stack):
    stack = stream_stack
    stranger = await stack.new_key("stranger-" + secrets.token_hex(3))
    async with stack.client() as client:
        theirs = await submit(client, RESTING)  # another account's: waits like an unknown id
    unknown = ["0190a0b0-0000-7000-8000-" + secrets.token_hex(6) for _ in range(40)]

    async def wait_out(order_id: str, key: str | None = None) -> int | None:
        messages, code = await stream(stack, order_id, key=key, timeout=20)
        assert [m["type"] for m in messages] == ["connection"]
        return code

    async def leave_early(order_id: str) -> None:
        async with websockets.connect(_url(stack, order_id), additional_headers=stack.headers) as ws:
            await ws.recv()

    waiting = [asyncio.create_task(wait_out(i)) for i in unknown[:20]]
    waiting += [asyncio.create_task(wait_out(theirs["orderId"], stranger)) for _ in range(5)]
    await eventually(
        lambda: _at_least(gateway_metric(stack, "engine_live_subscriptions", kind="orders"), 21),
        timeout=10, message="the waiting streams watched",
    )
    await asyncio.gather(*(leave_early(i) for i in unknown[20:]))
    assert set(await asyncio.gather(*waiting)) == {4404}
    await eventually(
        lambda: _equal(gateway_metric(stack, "engine_live_subscriptions", kind="orders"), 0.0),
        timeout=5, message="every watch of an unknown order released",
    )


async def test_a_quote_client_that_leaves_is_released_although_no_quote_comes(stream_stack):
    stack = stream_stack
    url = f"{stack.ws_url}/api/quotes/stream?pair=PUMP-MEW"  # no pool: nothing is ever sent
    for leave in ("abort", "close"):
        ws = await websockets.connect(url, additional_headers=stack.headers)
        assert json.loads(await ws.recv()) == {"type": "connection", "pair": "PUMP-MEW"}
        await eventually(lambda: _equal(gateway_metric(stack, "engine_live_subscriptions", kind="quotes"), 1.0))
        if leave == "abort":
            ws.transport.abort()
        else:
            await ws.close()
        await eventually(
            lambda: _equal(gateway_metric(stack, "engine_live_subscriptions", kind="quotes"), 0.0),
            timeout=3, message=f"the quote subscription released ({leave})",
        )


async def test_clients_leaving_mid_stream_log_nothing_and_release_their_watch(stream_stack):
    stack = stream_stack
    logged = len(gateway_log(stack))
    async with stack.client(timeout=30) as client:
        finished = await submit(client, market("0.2"))
        await wait_terminal(client, finished["orderId"])
        resting = await submit(client, RESTING)
        for round_ in range(30):
            running = await submit(client, market("0.1"))
            for order in (finished, resting, running):
                ws = await websockets.connect(_url(stack, order["orderId"]), additional_headers=stack.headers)
                if round_ % 3:
                    await ws.recv()
                if round_ % 3 == 2:
                    await ws.recv()
                ws.transport.abort()  # gone without a close frame, whatever the server is doing
    await eventually(
        lambda: _equal(gateway_metric(stack, "engine_live_subscriptions", kind="orders"), 0.0),
        timeout=15, message="every order watch released",
    )
    await eventually(lambda: _equal(gateway_metric(stack, "engine_ws_connections"), 0.0), timeout=15)
    assert not re.search(r"ERROR|Traceback|Exception", gateway_log(stack)[logged:])


async def _equal(value, expected) -> bool:
    return await value == expected


async def _at_least(value, expected) -> bool:
    return await value >= expected
