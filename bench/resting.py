"""python -m bench.resting: the real router with a large book of resting limit orders.

Loads N resting GTC limit orders straight into the event log (OrderAccepted + OrderOpened,
as if accepted earlier; the router's and executor's work consumers start after them),
starts the four services, and reports how long the router takes to re-arm its book from
the log, then the cost of each slot's trigger evaluation while prices move and some
orders fire. Conditions are printed with the figures.

  python -m bench.resting --orders 100000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import time
from fractions import Fraction

import httpx
import nats
import nats.js.api as api

from bench.stack import spawn
from services.router.decide import decide
from shared import events as ev
from shared.eventlog import EVENT_TYPE_HEADER, ensure_streams
from shared.market.model import Market
from shared.market.tokens import get_token
from shared.simulation import SimSettings
from shared.setup import DURABLE_EVENTS
from shared.topology import Topology

DIRECTIONS = [("SOL", "USDC", (0.1, 50)), ("USDC", "SOL", (10, 5000)), ("BONK", "SOL", (1e5, 1e8)),
              ("SOL", "USDT", (0.1, 50))]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.resting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to watch trigger evaluation")
    parser.add_argument("--spread-bps", type=int, default=300, help="limits lie 1..this many bps above the market")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def unit_prices(market: Market, slot: int) -> dict[tuple[str, str], Fraction]:
    prices = {}
    for token_in, token_out, _ in DIRECTIONS:
        probe = 10 ** get_token(token_in).decimals
        spec = ev.OrderSpec(order_type="market", token_in=token_in, token_out=token_out, amount_in=probe,
                            slippage_bps=0, request_hash="")
        prices[(token_in, token_out)] = Fraction(decide(spec, market, slot).expected_out, probe)
    return prices


async def load(nats_url: str, orders: int, spread_bps: int, seed: int) -> float:
    """Publish the resting orders; returns seconds taken."""
    rng = random.Random(seed)
    sim = SimSettings()
    slot = sim.slot_clock(_Clock()).current_slot()
    prices = unit_prices(Market(sim.sim_seed), slot)
    topology = Topology()
    nc = await nats.connect(nats_url)
    js = nc.jetstream(publish_async_max_pending=4000)
    await ensure_streams(js, topology)
    for durable in ("router", "executor"):  # work consumers start after the loaded orders
        await js.add_consumer(topology.orders_stream, api.ConsumerConfig(
            durable_name=durable, filter_subjects=topology.event_filter(*DURABLE_EVENTS[durable]),
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW, ack_wait=30.0, max_ack_pending=2048))
    started = time.perf_counter()
    now = int(time.time() * 1000)
    accepted = []
    for n in range(orders):
        token_in, token_out, (low, high) = DIRECTIONS[n % len(DIRECTIONS)]
        amount_in = int(rng.uniform(low, high) * 10 ** get_token(token_in).decimals)
        markup = Fraction(10_000 + rng.randint(1, spread_bps), 10_000)
        min_out = int(amount_in * prices[(token_in, token_out)] * markup) + 1
        order_id = f"bench-{n:07d}"
        spec = ev.OrderSpec(order_type="limit", token_in=token_in, token_out=token_out, amount_in=amount_in,
                            slippage_bps=50, request_hash=f"h{n}", time_in_force="GTC", min_out=min_out)
        event = ev.OrderAccepted(order_id=order_id, seq=1, event_id=f"{order_id}-1", occurred_at=now,
                                 correlation_id=order_id, order=spec)
        accepted.append(await _publish(js, topology, event, 0))
    seqs = [(await future).seq for future in accepted]
    opened = []
    for n, seq in enumerate(seqs):
        order_id = f"bench-{n:07d}"
        event = ev.OrderOpened(order_id=order_id, seq=2, event_id=f"{order_id}-2", occurred_at=now,
                               correlation_id=order_id, trigger="limit_price", pair="")
        opened.append(await _publish(js, topology, event, seq))
    for future in opened:
        await future
    await nc.close()
    return time.perf_counter() - started


async def _publish(js, topology: Topology, event: ev.OrderEvent, expected: int):
    kind = type(event).__name__
    headers = {"Nats-Msg-Id": f"{event.order_id}:{event.seq}", "Nats-Expected-Last-Subject-Sequence": str(expected),
               "Nats-Expected-Last-Subject-Sequence-Subject": topology.order_wildcard(event.order_id),
               EVENT_TYPE_HEADER: kind}
    return await js.publish_async(topology.order_subject(event.order_id, event.seq, kind), ev.encode(event),
                                  headers=headers)


class _Clock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def scrape(text: str) -> dict[str, float]:
    values = {}
    for name in ("engine_resting_orders", "engine_trigger_tick_seconds_sum", "engine_trigger_tick_seconds_count"):
        match = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.M)
        values[name] = float(match.group(1)) if match else 0.0
    values["buckets"] = {float(le): float(v) for le, v in re.findall(
        r'^engine_trigger_tick_seconds_bucket\{[^}]*le="([0-9.e+-]+)"[^}]*\} ([0-9.e+-]+)$', text, re.M)}
    return values


def main() -> None:
    args = parse()
    timings = {}

    def before(nats_url: str) -> None:
        timings["load"] = asyncio.run(load(nats_url, args.orders, args.spread_bps, args.seed))
        timings["services_started"] = time.perf_counter()

    with spawn("zero", {}, before=before) as stack:
        router = f"http://127.0.0.1:{stack.ops_ports['router']}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{router}/readyz", timeout=5).json()["checks"].get("book"):
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.05)
        else:
            raise SystemExit("the router did not arm its book within 10 minutes; see its log")
        armed = time.perf_counter() - timings["services_started"]
        first = scrape(httpx.get(f"{router}/metrics").text)
        time.sleep(args.seconds)
        last = scrape(httpx.get(f"{router}/metrics").text)
    ticks = last["engine_trigger_tick_seconds_count"] - first["engine_trigger_tick_seconds_count"]
    spent = last["engine_trigger_tick_seconds_sum"] - first["engine_trigger_tick_seconds_sum"]
    p99 = next((le for le, count in sorted(last["buckets"].items())
                if count - first["buckets"].get(le, 0) >= 0.99 * ticks), float("inf"))
    print("Conditions")
    print(f"  book        {args.orders:,} GTC limit orders, limits 1-{args.spread_bps} bps above the market, "
          f"{len(DIRECTIONS)} directions (SOL->USDC, USDC->SOL, BONK->SOL, SOL->USDT)")
    print("  stack       fresh local stack, SIM_PROFILE=zero, 400 ms slots, one router replica")
    print(f"  machine     {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
          f"{platform.python_version()} (services, NATS and PostgreSQL share it)")
    print("Results")
    print(f"  loading the orders into the log      {timings['load']:.1f} s ({2 * args.orders:,} events)")
    print(f"  router start to book armed from log  {armed:.1f} s (includes process start-up)")
    print(f"  resting at start / end of watch      {first['engine_resting_orders']:,.0f} / "
          f"{last['engine_resting_orders']:,.0f} (the difference fired as prices moved)")
    print(f"  trigger evaluation per slot          mean {1000 * spent / max(ticks, 1):.2f} ms over {ticks:.0f} slots, "
          f"p99 <= {1000 * p99:g} ms (histogram bucket)")


if __name__ == "__main__":
    main()
