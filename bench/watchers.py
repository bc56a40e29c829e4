"""`python -m bench watchers`: many open order streams on one gateway, their memory and delivery.

Rests `count / per-order` GTC limit orders whose limit no price reaches (so their streams
stay open), opens `per-order` WebSocket watchers on each, measures the gateway's resident
memory before and with them all open (each has seen the order's `open` event), then
cancels every order and checks every watcher receives the cancellation, gapless.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from decimal import Decimal
from dataclasses import dataclass, field

import aiohttp
import msgspec

from bench import cpu
from bench.conditions import describe
from bench.load import JSON, epoch_ms, client, ws_url
from bench.observe import report as cpu_report
from bench.stats import summary
from bench.target import Target
from engine_client import Event, LimitOrder, Submitted, stream_message

# A million USDC per SOL: never reached.
RESTING = msgspec.json.encode(
    LimitOrder(token_in="SOL", token_out="USDC", amount=Decimal("0.25"), limit_price=Decimal("1000000"), time_in_force="GTC")
)


@dataclass
class Watcher:
    order_id: str
    ready: bool = False  # has seen the order open
    final: str | None = None
    gaps: int = 0
    delivery_ms: float | None = None  # the terminal event's timestamp -> receipt
    error: str | None = None


@dataclass
class Opening:
    """Counts watchers settled (open, or failed before) so the caller can wait for all."""

    left: int
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


async def _watch(session: aiohttp.ClientSession, base: str, w: Watcher, opening: Opening,
                 connecting: asyncio.Semaphore) -> None:
    settled = False
    try:
        async with connecting:
            ws = await session.ws_connect(f"{base}/api/orders/{w.order_id}/stream")
        async with ws:
            expected = 1
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                event = stream_message(frame.data)
                if not isinstance(event, Event):
                    continue
                w.gaps += event.seq != expected
                expected = event.seq + 1
                if event.status == "open" and not settled:
                    w.ready = settled = True
                    opening.settle()
                if event.terminal:
                    w.final = event.status
                    w.delivery_ms = time.time() * 1000 - epoch_ms(event.timestamp)
    except Exception as exc:  # recorded, reported as an error count
        w.error = f"{type(exc).__name__}: {exc}"
    finally:
        if not settled:
            opening.settle()


async def _each(items: list, limit: int, act) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(item):
        async with gate:
            return await act(item)

    return await asyncio.gather(*(one(i) for i in items))


async def watch_many(target: Target, args: argparse.Namespace, gateway: list[int]) -> tuple[list[str], bool]:
    orders = math.ceil(args.count / args.per_order)
    base = ws_url(target.url)
    async with client(target.key, args.timeout) as session:
        async def submit(_: int) -> str:
            async with session.post(f"{target.url}/api/orders", data=RESTING, headers=JSON) as response:
                body = await response.read()
                if response.status != 202:
                    raise RuntimeError(f"submit: HTTP {response.status} {body[:200]!r}")
                return msgspec.json.decode(body, type=Submitted).order_id

        began = time.monotonic()
        ids = await _each(list(range(orders)), 64, submit)
        lines = [f"Orders: {orders} resting limit orders placed in {time.monotonic() - began:.1f} s"]
        before = sum(cpu.rss_kb(p) for p in gateway) if gateway else None
        watchers = [Watcher(ids[i % orders]) for i in range(args.count)]
        opening, connecting = Opening(len(watchers)), asyncio.Semaphore(args.connect_concurrency)
        async with target.probe.window() as seen:
            began = time.monotonic()
            tasks = [asyncio.create_task(_watch(session, base, w, opening, connecting)) for w in watchers]
            await asyncio.wait_for(opening.done.wait(), args.timeout)
            opened_s = time.monotonic() - began
            ready = sum(w.ready for w in watchers)
            with_open = sum(cpu.rss_kb(p) for p in gateway) if gateway else None
            began = time.monotonic()

            async def cancel(order_id: str) -> int:
                async with session.delete(f"{target.url}/api/orders/{order_id}") as response:
                    await response.read()
                    return response.status

            statuses = await _each(ids, 64, cancel)
            cancel_s = time.monotonic() - began
            await asyncio.wait_for(asyncio.gather(*tasks), args.timeout)
            delivered_s = time.monotonic() - began
    lines.append(f"Watchers: {ready}/{len(watchers)} open ({args.per_order} per order) in {opened_s:.1f} s")
    if before is not None and with_open is not None:
        lines.append(f"Gateway memory: VmRSS {before / 1024:.1f} MiB before, {with_open / 1024:.1f} MiB with "
                     f"{ready} watchers open: {(with_open - before) / max(ready, 1):.1f} KiB per watcher")
    else:
        lines.append("Gateway memory: not measured (gateway process not found)")
    got = [w for w in watchers if w.final == "cancelled"]
    errors = [w.error for w in watchers if w.error]
    refused = sum(s != 200 for s in statuses)
    lines += [
        f"Cancel: {len(ids)} DELETEs in {cancel_s:.1f} s ({refused} not 200); every watcher done "
        f"{delivered_s:.1f} s after the first",
        "Latency (ms)",
        summary("cancelled event -> watcher", [w.delivery_ms for w in got if w.delivery_ms is not None]),
        f"Stream integrity: {len(got)}/{len(watchers)} watchers received the cancellation; "
        f"{sum(w.gaps for w in watchers)} sequence gaps or duplicates; {len(errors)} errors",
        *(f"  {e}" for e in errors[:5]),
        *cpu_report(seen, target.probe, len(watchers), unit="watcher"),
    ]
    return lines, len(got) == len(watchers) and not errors and not refused and not sum(w.gaps for w in watchers)


def run_watchers(target: Target, args: argparse.Namespace) -> int:
    gateway = target.probe.pids.get("gateway", [])
    load = (f"{args.count} WebSocket watchers, {args.per_order} per order on "
            f"{math.ceil(args.count / args.per_order)} resting limit orders; one gateway")
    print("\n".join(describe(target.description, load)))
    for pid in gateway:
        limit = cpu.open_files_limit(pid)
        if limit < args.count + 1024:
            print(f"warning: the gateway (pid {pid}) may open only {limit} files; {args.count} watchers need "
                  f"about {args.count + 1024} (raise its `ulimit -n`)")
    lines, ok = asyncio.run(watch_many(target, args, gateway))
    print("\n".join(lines))
    return 0 if ok else 1
