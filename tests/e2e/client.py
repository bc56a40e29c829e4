"""Clients of the public API for the end-to-end tests.

`engine_of(stack)` is the typed client a trading bot uses (`engine_client`); `wait_terminal`
reads through it. `submit` and `stream` stay at the wire: they send a body exactly as
given (unkeyed orders, odd fields) and hand back the raw messages and the close code,
which the protocol tests inspect.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from engine_client import TERMINAL, EngineClient, OrderView
from tests.helpers import eventually


def engine_of(stack: Any, *, key: str | None = None, **options: Any) -> EngineClient:
    """The typed client of the stack's gateway, sending `key` (default: the stack's own)."""
    return EngineClient(stack.base_url, key if key is not None else stack.api_key, **options)


def market(amount: str = "0.5", token_in: str = "SOL", token_out: str = "USDC", **extra: Any) -> dict[str, Any]:
    return {"tokenIn": token_in, "tokenOut": token_out, "amount": amount, **extra}


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/orders/execute", json=body)
    assert response.status_code in (200, 202), response.text
    return response.json()


async def stream(stack: Any, order_id: str, *, after_seq: int | None = None, path: str = "stream",
                 timeout: float = 30, key: str | None = None,
                 received: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and the close code (`key`: another account's).

    Messages are appended to `received` as they come when it is given, so a test can wait for
    the `connection` message, or for a given event, while the stream is still open.
    """
    ws_base = stack.ws_url
    headers = {"Authorization": f"Bearer {key if key is not None else stack.api_key}"}
    url = f"{ws_base}/api/orders/{order_id}/stream" if path == "stream" else f"{ws_base}/api/orders/status/{order_id}"
    if after_seq is not None:
        url += f"?afterSeq={after_seq}"
    messages: list[dict[str, Any]] = [] if received is None else received
    async with asyncio.timeout(timeout):
        async with websockets.connect(url, additional_headers=headers) as ws:
            try:
                async for raw in ws:
                    messages.append(json.loads(raw))
            except websockets.ConnectionClosed:
                pass
            return messages, ws.close_code


async def wait_terminal(client: httpx.AsyncClient | EngineClient, order_id: str, timeout: float = 30) -> OrderView:
    """The order once the read model shows it finished."""
    typed = client if isinstance(client, EngineClient) else EngineClient(http=client)

    async def finished() -> OrderView | None:
        view = await typed.get(order_id)
        return view if view.status in TERMINAL else None

    return await eventually(finished, timeout=timeout, interval=0.05, message=f"order {order_id} finished")
