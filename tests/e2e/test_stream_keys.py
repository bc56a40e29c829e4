"""A browser's way to authenticate a stream: the API key as a WebSocket subprotocol.

Browsers cannot set headers on a WebSocket, so the client offers the subprotocols
`engine.v1` and `bearer.<key>`; the gateway checks the key exactly as it checks a header
(unknown or revoked: 4401; over the stream cap: 4429) and accepts with `engine.v1`, so a
browser sees the close code instead of a failed handshake.
"""

import asyncio
import json
import secrets
import time

import pytest
import websockets

from shared.accounts import KeyStore
from shared.topology import Topology
from tests.e2e.client import submit
from tests.helpers import eventually

RESTING = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000"}


def offered(key: str) -> list[str]:
    return ["engine.v1", f"bearer.{key}"]


async def _closed_with(url: str, key: str) -> tuple[str | None, int | None]:
    """The subprotocol the server selected and the code it closed with."""
    async with asyncio.timeout(20):
        async with websockets.connect(url, subprotocols=offered(key)) as ws:
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            return ws.subprotocol, ws.close_code


@pytest.mark.parametrize("path", ["/api/orders/{orderId}/stream", "/api/quotes/stream?pair=SOL-USDC"])
async def test_a_stream_authenticated_by_subprotocol_is_accepted_with_engine_v1(stack, path):
    key = await stack.new_key("browser-" + secrets.token_hex(3))
    async with stack.client(key=key) as client:
        order = await submit(client, RESTING)
    url = stack.ws_url + path.format(orderId=order["orderId"])
    async with websockets.connect(url, subprotocols=offered(key)) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ws.subprotocol == "engine.v1"
        assert first["type"] == "connection"


async def test_an_unknown_key_offered_as_a_subprotocol_closes_the_stream_with_4401(stack):
    unknown = "dex_aaaaaaaaaaaa_" + "A" * 43
    url = f"{stack.ws_url}/api/quotes/stream?pair=SOL-USDC"
    assert await _closed_with(url, unknown) == ("engine.v1", 4401)


async def test_a_revoked_key_offered_as_a_subprotocol_closes_the_stream_with_4401(stack):
    key = await stack.new_key("revoked-browser-" + secrets.token_hex(3))
    url = f"{stack.ws_url}/api/quotes/stream?pair=SOL-USDC"
    nc = await stack.admin_nats()
    try:
        store = await KeyStore.open(nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]))
        await store.revoke(key.split("_")[1], int(time.time() * 1000))
    finally:
        await nc.close()

    async def refused() -> bool:
        return await _closed_with(url, key) == ("engine.v1", 4401)

    await eventually(refused, timeout=10, message="the revoked key refused on a stream")


async def test_streams_opened_with_a_subprotocol_key_count_against_its_stream_cap(stack):
    key = await stack.new_key("capped-browser-" + secrets.token_hex(3), max_streams=1)
    url = f"{stack.ws_url}/api/quotes/stream?pair=SOL-USDC"
    async with websockets.connect(url, subprotocols=offered(key)) as first:
        assert json.loads(await first.recv())["type"] == "connection"
        assert await _closed_with(url, key) == ("engine.v1", 4429)
