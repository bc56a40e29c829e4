"""python -m bench.rearm: how long a router takes to re-arm its resting book at start.

Writes a log of finished market orders (accepted, routed with the real router's decision,
built, submitted, confirmed) and open GTC limit orders to a fresh nats-server, then times
the router's book feed (`services.router.resting.BookFeed`, as the router starts it) from
start to armed: replaying the whole log, and from a snapshot in the BOOK object store
followed by the events appended after it (by default 30 s of 60 orders/s, the snapshot
interval). Conditions are printed with the figures.

  python -m bench.rearm --finished 100000 --open 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nats

from bench.resting import DIRECTIONS, _Clock
from services.router.book import LimitBook
from services.router.decide import decide
from services.router.resting import BookFeed
from shared import events as ev
from shared.eventlog import EVENT_TYPE_HEADER
from shared.market.model import Market
from shared.market.tokens import get_token
from shared.simulation import SimSettings
from shared.topology import Topology
from tools.devservers import start_nats
from tools.setup import provision_nats


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rearm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=100_000, help="finished market orders in the log")
    parser.add_argument("--open", type=int, default=1_000, help="open GTC limit orders in the log")
    parser.add_argument("--tail", type=int, default=1_800, help="finished orders appended after the snapshot")
    parser.add_argument("--runs", type=int, default=3, help="timed starts of each kind (the median is shown)")
    return parser.parse_args()


class Writer:
    """Appends whole order histories with asynchronous publishes (no per-order guard: one writer)."""

    def __init__(self, js, topology: Topology):
        self._js, self._topology = js, topology
        self._pending: list[asyncio.Future] = []
        self.events = 0

    async def write(self, events: list[ev.OrderEvent]) -> None:
        for event in events:
            kind = type(event).__name__
            headers = {"Nats-Msg-Id": f"{event.order_id}:{event.seq}", EVENT_TYPE_HEADER: kind}
            self._pending.append(await self._js.publish_async(
                self._topology.order_subject(event.order_id, event.seq, kind), ev.encode(event), headers=headers))
            self.events += 1
        if len(self._pending) >= 2_000:
            await self.flush()

    async def flush(self) -> None:
        await asyncio.gather(*self._pending)
        self._pending.clear()


def stories(prefix: str, finished: int, open_: int, now: int):
    """Order histories: `finished` confirmed market orders, then `open_` resting limit orders."""
    market = Market(SimSettings().sim_seed)
    slot = SimSettings().slot_clock(_Clock()).current_slot()
    routes = {}
    for token_in, token_out, (low, _) in DIRECTIONS:
        amount = int(low * 10 ** get_token(token_in).decimals)
        spec = ev.OrderSpec(order_type="market", token_in=token_in, token_out=token_out, amount_in=amount,
                            slippage_bps=50, request_hash="h", account="bench")
        routes[(token_in, token_out)] = (spec, decide(spec, market, slot))
    for n in range(finished):
        order_id = f"{prefix}f{n:07d}"
        spec, route = routes[DIRECTIONS[n % len(DIRECTIONS)][:2]]
        meta = {"order_id": order_id, "correlation_id": order_id, "occurred_at": now}
        signature = f"sig{order_id}"
        yield [
            ev.OrderAccepted(**meta, seq=1, event_id=f"{order_id}-1", order=spec),
            ev.RoutingStarted(**meta, seq=2, event_id=f"{order_id}-2"),
            ev.OrderRouted(**meta, seq=3, event_id=f"{order_id}-3", route=route),
            ev.TransactionBuilt(**meta, seq=4, event_id=f"{order_id}-4", attempt=1, signature=signature,
                                blockhash="bh", blockhash_slot=slot, last_valid_slot=slot + 25, fee_payer="payer",
                                compute_unit_limit=200_000, compute_unit_price=50_000, priority_fee_lamports=10_000,
                                instructions=("SetComputeUnitLimit", "SetComputeUnitPrice", "swap")),
            ev.TransactionSubmitted(**meta, seq=5, event_id=f"{order_id}-5", attempt=1, signature=signature,
                                    slot=slot + 1),
            ev.OrderConfirmed(**meta, seq=6, event_id=f"{order_id}-6", signature=signature, slot=slot + 3,
                              amount_out=route.expected_out),
        ]
    for n in range(open_):
        order_id = f"{prefix}o{n:07d}"
        spec, route = routes[DIRECTIONS[n % len(DIRECTIONS)][:2]]
        limit = ev.OrderSpec(order_type="limit", token_in=spec.token_in, token_out=spec.token_out,
                             amount_in=spec.amount_in, slippage_bps=50, request_hash="h", time_in_force="GTC",
                             min_out=2 * route.expected_out, account="bench")
        meta = {"order_id": order_id, "correlation_id": order_id, "occurred_at": now}
        yield [ev.OrderAccepted(**meta, seq=1, event_id=f"{order_id}-1", order=limit),
               ev.OrderOpened(**meta, seq=2, event_id=f"{order_id}-2", trigger="limit_price",
                              pair=f"{spec.token_in}-{spec.token_out}")]


async def arm(js, topology: Topology, *, snapshots: bool) -> tuple[float, BookFeed]:
    feed = BookFeed(js, topology, LimitBook(), _Clock(), snapshot_every_s=30 if snapshots else 0)
    started = time.perf_counter()
    await feed.start()
    await feed.caught_up.wait()
    seconds = time.perf_counter() - started
    await feed.stop()
    return seconds, feed


async def measure(nats_url: str, args: argparse.Namespace) -> dict:
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=4_000)
    topology = Topology()
    await provision_nats(js, topology)
    writer = Writer(js, topology)
    now = _Clock().now_ms()
    started = time.perf_counter()
    for story in stories("", args.finished, args.open, now):
        await writer.write(story)
    await writer.flush()
    out: dict = {"load_s": time.perf_counter() - started, "events": writer.events}
    info = await js.stream_info(topology.orders_stream)
    out["bytes"] = info.state.bytes
    full = [await arm(js, topology, snapshots=False) for _ in range(args.runs)]
    out["full"] = statistics.median(s for s, _ in full)
    feed = full[-1][1]
    assert len(feed.book) == args.open, f"{len(feed.book)} resting, expected {args.open}"
    saver = BookFeed(js, topology, LimitBook(), _Clock(), snapshot_every_s=30)
    await saver.start()
    await saver.caught_up.wait()
    started = time.perf_counter()
    await saver.save()
    out["save_s"] = time.perf_counter() - started
    await saver.stop()
    out["snapshot_bytes"] = (await (await js.object_store(topology.book_bucket)).get_info("book")).size
    for story in stories("tail-", args.tail, 0, now):
        await writer.write(story)
    await writer.flush()
    runs = [await arm(js, topology, snapshots=True) for _ in range(args.runs)]
    out["snapshot"] = statistics.median(s for s, _ in runs)
    assert runs[-1][1].fold.snapshot("") == (await arm(js, topology, snapshots=False))[1].fold.snapshot(""), \
        "the book re-armed from the snapshot differs from a full replay"
    await nc.close()
    return out


def main() -> None:
    args = parse()
    base = Path(tempfile.mkdtemp(prefix="bench-rearm-"))
    try:
        with start_nats(store_dir=base) as server:
            out = asyncio.run(measure(server.url, args))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    orders = args.finished + args.open
    print("Conditions")
    print(f"  log         {args.finished:,} finished market orders (6 events each) and {args.open:,} open GTC limit "
          f"orders (2 events): {6 * args.finished + 2 * args.open:,} events, {out['bytes'] / orders:,.0f} bytes an order")
    print(f"  tail        {args.tail:,} more finished orders appended after the snapshot")
    print(f"  server      a fresh nats-server (file store), the book feed in this process; median of {args.runs}")
    print(f"  machine     {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    print("Results")
    print(f"  writing the log                 {out['load_s']:.1f} s")
    print(f"  re-arm replaying the whole log  {out['full']:.2f} s")
    print(f"  saving a snapshot               {1000 * out['save_s']:.0f} ms ({out['snapshot_bytes']:,} bytes)")
    print(f"  re-arm from snapshot + tail     {out['snapshot']:.2f} s (same book as a full replay)")


if __name__ == "__main__":
    main()
