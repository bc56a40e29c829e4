"""python -m bench.book: how the limit book triggers orders as prices move, against a full scan.

  python -m bench.book
  python -m bench.book --orders 100000 --moves 2000 --pairs 3 --seed 7

Builds a book of resting limit orders on a few pairs, both directions, with limits up to
`--spread-bps` beyond the reference price on either side (so the two directions together
span +-spread around it). Then moves every pair's price along a seeded random walk; per move
and direction it asks the book for candidates at the new price, quotes each one exactly for
its size (a price-impact model), removes the ones that fire and rests a fresh order in each
one's place, so the book keeps its size. Every `--naive-every`-th move, a full scan of all
resting orders finds the candidates too; its result is checked against the book's.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from dataclasses import dataclass

from bench.stats import percentile
from services.router.book import LimitBook, RestingOrder

DECIMALS = {"SOL": 9, "USDC": 6, "BONK": 5, "WIF": 6, "JUP": 6}
USD_MICRO = {"SOL": 150_000_000, "USDC": 1_000_000, "BONK": 20, "WIF": 2_000_000, "JUP": 800_000}
PAIRS = [("SOL", "USDC"), ("BONK", "SOL"), ("WIF", "SOL"), ("JUP", "USDC")]
FEE_PPM = 2_500
PPM = 1_000_000


@dataclass
class Walk:
    """One pair's price as a factor (ppm) on its reference."""

    base: str
    quote: str
    factor_ppm: int = PPM

    def price(self, token_in: str) -> tuple[int, int]:
        """Best marginal output per input, in base units, after the fee, as num/den."""
        usd_in, usd_out = USD_MICRO[token_in], USD_MICRO[self.other(token_in)]
        num = usd_in * 10 ** DECIMALS[self.other(token_in)] * (PPM - FEE_PPM)
        den = usd_out * 10 ** DECIMALS[token_in] * PPM
        return (num * self.factor_ppm, den * PPM) if token_in == self.base else (num * PPM, den * self.factor_ppm)

    def other(self, token: str) -> str:
        return self.quote if token == self.base else self.base


@dataclass
class Move:
    total_us: float  # candidates, an exact quote each, removal of those that fire
    lookup_us: float  # the candidates calls alone
    remove_us: float  # the removals alone
    touched: int
    fired: list[RestingOrder]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000, help="resting limit orders (kept constant)")
    parser.add_argument("--moves", type=int, default=2_000, help="price moves")
    parser.add_argument("--pairs", type=int, default=3, choices=range(1, len(PAIRS) + 1))
    parser.add_argument("--spread-bps", type=int, default=500, help="limits up to this far beyond the market")
    parser.add_argument("--step-ppm", type=int, default=1_000, help="largest price step per move (uniform)")
    parser.add_argument("--depth-usd", type=int, default=5_000_000,
                        help="price impact: an order of this size in USD would move its own price by 100 %%")
    parser.add_argument("--naive-every", type=int, default=10, help="run the full scan on every n-th move")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.walks = {pair: Walk(*pair) for pair in PAIRS[: args.pairs]}
        self.directions = [(a, b, pair) for pair in self.walks for a, b in (pair, pair[::-1])]
        self.pair = {(a, b): pair for a, b, pair in self.directions}
        self.book = LimitBook()
        self.naive: dict[str, RestingOrder] = {}
        self.ids = 0

    def new_order(self, token_in: str, token_out: str, pair: tuple[str, str]) -> RestingOrder:
        num, den = self.walks[pair].price(token_in)
        usd = self.rng.randint(10, 50_000)
        amount_in = usd * PPM * 10 ** DECIMALS[token_in] // USD_MICRO[token_in]
        beyond = self.rng.randint(1, self.args.spread_bps)
        self.ids += 1
        return RestingOrder(order_id=f"o{self.ids}", token_in=token_in, token_out=token_out, amount_in=amount_in,
                            min_out=amount_in * num * (10_000 + beyond) // (den * 10_000), expires_at=None)

    def exact_out(self, order: RestingOrder, num: int, den: int) -> int:
        """The order's output at its own size: the marginal price less a linear price impact."""
        usd_micro = order.amount_in * USD_MICRO[order.token_in] // 10 ** DECIMALS[order.token_in]
        impact_ppm = min(PPM, usd_micro // self.args.depth_usd)
        return order.amount_in * num * (PPM - impact_ppm) // (den * PPM)

    def build(self) -> float:
        orders = [self.new_order(*self.directions[i % len(self.directions)]) for i in range(self.args.orders)]
        began = time.perf_counter()
        for order in orders:
            self.book.add(order)
        elapsed = time.perf_counter() - began
        self.naive = {o.order_id: o for o in orders}
        return elapsed

    def step(self) -> None:
        for walk in self.walks.values():
            step = self.rng.randint(-self.args.step_ppm, self.args.step_ppm)
            walk.factor_ppm = walk.factor_ppm * (PPM + step) // PPM

    def move(self) -> Move:
        """Candidates, exact quotes and removals for every direction."""
        began = time.perf_counter_ns()
        lookup_ns = remove_ns = touched = 0
        fired: list[RestingOrder] = []
        for token_in, token_out, pair in self.directions:
            num, den = self.walks[pair].price(token_in)
            t0 = time.perf_counter_ns()
            candidates = self.book.candidates(token_in, token_out, num, den)
            lookup_ns += time.perf_counter_ns() - t0
            touched += len(candidates)
            for order in candidates:
                if self.exact_out(order, num, den) >= order.min_out:
                    t0 = time.perf_counter_ns()
                    self.book.remove(order.order_id)
                    remove_ns += time.perf_counter_ns() - t0
                    fired.append(order)
        total_ns = time.perf_counter_ns() - began
        return Move(total_ns / 1_000, lookup_ns / 1_000, remove_ns / 1_000, touched, fired)

    def scan(self) -> tuple[float, set[str]]:
        """The same decision by a full scan of every resting order (without removing)."""
        began = time.perf_counter_ns()
        prices = {(a, b): self.walks[pair].price(a) for a, b, pair in self.directions}
        fired = set()
        for order in self.naive.values():
            num, den = prices[(order.token_in, order.token_out)]
            if order.min_out * den <= num * order.amount_in and self.exact_out(order, num, den) >= order.min_out:
                fired.add(order.order_id)
        return (time.perf_counter_ns() - began) / 1_000, fired


def report(name: str, values: list[float], unit: str) -> str:
    ps = "  ".join(f"p{p}={percentile(values, p):10.1f}" for p in (50, 99))
    return f"  {name:<32} {ps}  max={max(values):10.1f}  mean={sum(values) / len(values):10.1f} {unit}"


def main() -> None:
    args = parse()
    bench = Bench(args)
    build_s = bench.build()
    moves_us, lookups_us, removes_us, touched, fired_per_move, scans_us, adds_us = [], [], [], [], [], [], []
    for i in range(args.moves):
        bench.step()
        scanning = i % args.naive_every == 0
        if scanning:
            scan_us, scan_fired = bench.scan()
            scans_us.append(scan_us)
        move = bench.move()
        if scanning and scan_fired != {o.order_id for o in move.fired}:
            raise SystemExit(f"move {i}: the book fired {len(move.fired)} orders, the full scan {len(scan_fired)}")
        moves_us.append(move.total_us)
        lookups_us.append(move.lookup_us)
        if move.fired:
            removes_us.append(move.remove_us / len(move.fired))
        touched.append(move.touched)
        fired_per_move.append(len(move.fired))
        fresh = [bench.new_order(o.token_in, o.token_out, bench.pair[(o.token_in, o.token_out)]) for o in move.fired]
        began = time.perf_counter_ns()
        for order in fresh:
            bench.book.add(order)
        if fresh:
            adds_us.append((time.perf_counter_ns() - began) / 1_000 / len(fresh))
        for order in move.fired:
            del bench.naive[order.order_id]
        bench.naive.update((o.order_id, o) for o in fresh)
    sides = bench.book.sides()
    print("Conditions")
    print(f"  book        {args.orders:,} resting limit orders on {args.pairs} pairs "
          f"({', '.join('-'.join(p) for p in bench.walks)}), both directions, {len(sides)} sides of "
          f"{min(sides.values()):,}-{max(sides.values()):,} at the end")
    print(f"  limits      1-{args.spread_bps} bps beyond the market (uniform) in each direction, "
          f"sizes $10-$50,000 (uniform), price impact size/${args.depth_usd:,}")
    print(f"  moves       {args.moves:,}, every pair's price x (1 + u), u uniform in +-{args.step_ppm} ppm, seed "
          f"{args.seed}; each fired order replaced by a fresh one at the new price")
    print(f"  full scan   every {args.naive_every}th move ({len(scans_us)} samples), same decision, checked equal")
    print(f"  machine     {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, one process")
    print("Build")
    print(f"  {args.orders:,} adds in {build_s * 1000:.1f} ms ({build_s * 1e6 / args.orders:.2f} µs per add)")
    print("Per move (all directions)")
    print(report("book: candidates, quote, remove", moves_us, "µs"))
    print(report("  of which candidates() calls", lookups_us, "µs"))
    print(report("full scan: compare all, quote", scans_us, "µs"))
    print(report("orders touched (candidates)", [float(t) for t in touched], ""))
    print(report("orders fired", [float(f) for f in fired_per_move], ""))
    print("Per order")
    print(report("remove (moves that fired)", removes_us, "µs"))
    print(report("add of a fresh order", adds_us, "µs"))
    print(f"Total fired {sum(fired_per_move):,} over {args.moves:,} moves; touched {sum(touched):,} "
          f"(the rest held back by price impact at their size); book size at the end {len(bench.book):,}")


if __name__ == "__main__":
    main()
