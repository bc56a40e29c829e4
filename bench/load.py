"""Open-loop load: orders submitted at a fixed rate, each watched over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec

from engine_client import Event, Order, Submitted, stream_message


@dataclass
class OrderRun:
    post_started: float = 0.0  # monotonic
    post_ms: float | None = None
    http_status: int | None = None
    order_id: str | None = None
    terminal_status: str | None = None
    terminal_at: float | None = None  # monotonic, when the client saw it
    accept_to_terminal_ms: float | None = None  # server timestamps
    delivery_ms: list[float] = field(default_factory=list)  # event timestamp -> client receipt
    gaps: int = 0
    error: str | None = None


def epoch_ms(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def _watch(session: aiohttp.ClientSession, ws_base: str, run: OrderRun, watchers: int, timeout: float) -> None:
    async def one(primary: bool) -> None:
        expected = 1
        accepted_ms = None
        async with session.ws_connect(f"{ws_base}/api/orders/{run.order_id}/stream") as ws:
            connected_ms = time.time() * 1000
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                now_ms = time.time() * 1000
                event = stream_message(frame.data)
                if not isinstance(event, Event):
                    continue
                if event.seq != expected:
                    run.gaps += 1
                expected = event.seq + 1
                stamp = epoch_ms(event.timestamp)
                if event.event == "OrderAccepted":
                    accepted_ms = stamp
                if primary and stamp >= connected_ms:
                    # Replayed events were not live: only events after connecting count.
                    run.delivery_ms.append(now_ms - stamp)
                if event.terminal and primary:
                    run.terminal_status = event.status
                    run.terminal_at = time.monotonic()
                    if accepted_ms is not None:
                        run.accept_to_terminal_ms = stamp - accepted_ms

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(i == 0) for i in range(watchers)))
    except Exception as exc:  # recorded, reported as an error count
        run.error = f"stream: {type(exc).__name__}: {exc}"


async def _order(session: aiohttp.ClientSession, url: str, ws_base: str, body: bytes, run: OrderRun, watchers: int,
                 timeout: float, posting: asyncio.Semaphore | contextlib.nullcontext) -> None:
    async with posting:
        run.post_started = time.monotonic()
        try:
            async with session.post(f"{url}/api/orders/execute", data=body, headers=JSON) as response:
                text = await response.text()
                run.http_status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            run.error = f"post: {type(exc).__name__}: {exc}"
            return
        run.post_ms = (time.monotonic() - run.post_started) * 1000
    if run.http_status != 202:
        run.error = f"post: HTTP {run.http_status} {text[:200]}"
        return
    run.order_id = msgspec.json.decode(text, type=Submitted).order_id
    await _watch(session, ws_base, run, watchers, timeout)


JSON = {"Content-Type": "application/json"}


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)


def client(key: str, timeout: float) -> aiohttp.ClientSession:
    """A session sending API key `key`, with no cap on connections (open streams hold one each)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                 timeout=aiohttp.ClientTimeout(total=timeout),
                                 headers={"Authorization": f"Bearer {key}"})


async def drive(url: str, *, key: str, orders: int, rate: float | None, watchers: int, bodies: list[Order],
                timeout: float, in_flight: int | None = None) -> list[OrderRun]:
    """Submit `orders` with API key `key`, each watched over `watchers` WebSockets.

    At `rate` per second regardless of how fast they finish (open loop), or with `rate`
    None all at once, at most `in_flight` POSTs awaiting their answer at a time.
    """
    runs = [OrderRun() for _ in range(orders)]
    encoded = [msgspec.json.encode(body) for body in bodies]  # no clientOrderId: each POST a new order
    posting = asyncio.Semaphore(in_flight) if in_flight else contextlib.nullcontext()
    async with client(key, timeout) as session:
        start = time.monotonic()
        tasks = []
        for i, run in enumerate(runs):
            delay = start + i / rate - time.monotonic() if rate else 0
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(
                _order(session, url, ws_url(url), encoded[i % len(encoded)], run, watchers, timeout, posting)))
        await asyncio.gather(*tasks)
    return runs
