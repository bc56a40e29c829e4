"""python -m bench.routing: what routing gains over the best single venue, and what it costs.

  python -m bench.routing
  python -m bench.routing --seed 42 --slots 25 --start 10000 --spacing 997

For each pair and size (in SOL-equivalent at genesis prices) the router decides at every
slot; the table shows the first slot's decision in full and, over all slots, the kinds
chosen, the gain over the best single-venue direct route and the decision time. Times
are `decide(spec, market, slot)` with the slot's pools already built (the market builds
a slot's pools once and shares them between orders); building them is shown apart.
Each decision is timed ``--repeat`` times and the fastest kept, so that other work on
a shared machine does not pass for routing cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import Counter
from fractions import Fraction

import msgspec

from bench.stats import percentile
from services.router.decide import NoRoute, decide
from shared import events as ev
from shared.amounts import format_amount
from shared.market.model import Market
from shared.market.tokens import get_token

PAIRS = [("SOL", "USDC"), ("USDC", "SOL"), ("BONK", "USDC"), ("JUP", "SOL"), ("WIF", "USDC")]
SIZES_SOL = (1, 100, 1_000, 10_000, 50_000)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42, help="market seed (the services' SIM_SEED default)")
    parser.add_argument("--slots", type=int, default=25, help="slots to decide at, per pair and size")
    parser.add_argument("--start", type=int, default=10_000, help="first slot")
    parser.add_argument("--spacing", type=int, default=997, help="slots between two decisions")
    parser.add_argument("--repeat", type=int, default=3, help="timings per decision; the fastest is kept")
    return parser.parse_args()


def sol_values(market: Market) -> dict[str, Fraction]:
    """Genesis value of one whole token in SOL, found by walking the listed pairs from SOL."""
    values = {"SOL": Fraction(1)}
    changed = True
    while changed:
        changed = False
        for pair in market.pairs():
            price = Fraction(pair.price)  # quote per base
            if pair.base in values and pair.quote not in values:
                values[pair.quote] = values[pair.base] / price
                changed = True
            elif pair.quote in values and pair.base not in values:
                values[pair.base] = values[pair.quote] * price
                changed = True
    return values


def amount_for(token: str, size_sol: int, values: dict[str, Fraction]) -> int:
    units = Fraction(size_sol) / values[token] * 10 ** get_token(token).decimals
    return max(1, int(units))


def decision(market: Market, spec: ev.OrderSpec, slot: int, repeat: int) -> tuple[ev.Route | None, float]:
    market.pools_at(slot)  # build the slot's pools outside the timing
    route, fastest = None, float("inf")
    for _ in range(max(1, repeat)):
        began = time.perf_counter()
        try:
            route = decide(spec, market, slot)
        except NoRoute:
            route = None
        fastest = min(fastest, (time.perf_counter() - began) * 1000)
    return route, fastest


def best_direct(route: ev.Route) -> int | None:
    return max((q.amount_out for q in route.quotes if q.fillable), default=None)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{model}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def main() -> int:
    args = parse()
    market = Market(args.seed)
    values = sol_values(market)
    slots = [args.start + i * args.spacing for i in range(args.slots)]
    base = ev.OrderSpec(order_type="market", token_in="SOL", token_out="USDC", amount_in=1, slippage_bps=50,
                        request_hash="bench")
    build_ms = []
    for slot in slots:
        began = time.perf_counter()
        Market(args.seed).pools_at(slot)
        build_ms.append((time.perf_counter() - began) * 1000)
    print("Conditions")
    print(f"  market      seed {args.seed}, {len(slots)} slots from {slots[0]} every {args.spacing} "
          f"({slots[0]}..{slots[-1]})")
    print(f"  sizes       {', '.join(map(str, SIZES_SOL))} SOL-equivalent at genesis prices "
          f"({', '.join(f'1 SOL = {float(1 / values[t]):g} {t}' for t in ('USDC', 'BONK', 'JUP', 'WIF'))})")
    print(f"  machine     {machine()}, load average {os.getloadavg()[0]:.2f} at start; one process")
    print(f"  timing      fastest of {args.repeat} runs per decision, pools prebuilt")
    print(f"  pools       building every pool of a slot: median {statistics.median(build_ms):.2f} ms "
          "(not in the times below)")
    print()
    header = (f"{'pair':<10} {'size SOL':>8}  {'best single venue':>17}  {'chosen at the first slot':<58} "
              f"{'its output':>17} {'gain':>5}  |  {'kinds chosen over all slots':<30} {'gain p50/max':>12}  "
              f"{'ms p50/p95/max':>15}")
    print(header)
    print("-" * len(header))
    all_ms: list[float] = []
    for token_in, token_out in PAIRS:
        decimals = get_token(token_out).decimals
        for size in SIZES_SOL:
            spec = msgspec.structs.replace(base, token_in=token_in, token_out=token_out,
                                           amount_in=amount_for(token_in, size, values))
            kinds: Counter[str] = Counter()
            gains: list[int] = []
            times: list[float] = []
            first: tuple[ev.Route | None] | None = None
            for slot in slots:
                route, ms = decision(market, spec, slot, args.repeat)
                times.append(ms)
                kinds[route.kind if route else "no route"] += 1
                if route is not None:
                    gains.append(route.gain_bps)
                if first is None:
                    first = (route,)
            all_ms.extend(times)
            route = first[0] if first else None
            if route is None:
                chosen, out, gain, direct = "no route", "-", "-", "-"
            else:
                chosen = f"{route.kind}: {route.candidates[0].description}"
                out = f"{format_amount(route.expected_out, decimals)}"
                single = best_direct(route)
                direct = format_amount(single, decimals) if single is not None else "no pool"
                if single is None and route.quotes:
                    direct = "none fills"
                gain = str(route.gain_bps) if single is not None else "n/a"
            kind_text = " ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
            gain_text = f"{percentile(gains, 50):.0f}/{max(gains)}" if gains else "-"
            time_text = f"{percentile(times, 50):.2f}/{percentile(times, 95):.2f}/{max(times):.2f}"
            print(f"{token_in + '->' + token_out:<10} {size:>8}  {direct:>17}  {chosen[:58]:<58} {out:>17} {gain:>5}"
                  f"  |  {kind_text:<30} {gain_text:>12}  {time_text:>15}")
    print()
    print(f"Decision time over all {len(all_ms)} decisions: p50 {percentile(all_ms, 50):.2f} ms, "
          f"p95 {percentile(all_ms, 95):.2f} ms, p99 {percentile(all_ms, 99):.2f} ms, max {max(all_ms):.2f} ms")
    print("Outputs are in the output token. Gain: basis points over the best single-venue direct output")
    print("(n/a: the pair has no pool, or none that can take the whole order).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
