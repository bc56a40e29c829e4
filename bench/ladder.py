"""`python -m bench ladder`: the highest open-loop rate the stack sustains within its targets.

Each step offers one rate for a fixed time. Without a list of rates, the ladder doubles the
rate while steps pass, then bisects between the highest pass and the lowest failure until
they are within `precision` of each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Sequence

from bench.conditions import describe
from bench.observe import stack_cpu_ms_per
from bench.stats import Figures, percentile
from bench.target import measure, open_target, spawned
from engine_client import Order


@dataclass(frozen=True)
class Targets:
    terminal_p99_ms: float = 500.0  # accepted -> terminal
    post_p99_ms: float = 50.0
    delivery_p99_ms: float = 25.0  # event -> WebSocket client


def verdict(f: Figures, targets: Targets) -> list[str]:
    """Why a step fails; empty when it passes."""
    why = []
    if f.completed < f.offered:
        why.append(f"{f.offered - f.completed} of {f.offered} not completed")
    if f.gaps:
        why.append(f"{f.gaps} gaps/duplicates")
    if f.errors:
        why.append(f"{len(f.errors)} errors")
    for name, values, limit in (("terminal", f.accept_to_terminal_ms, targets.terminal_p99_ms),
                                ("POST", f.post_ms, targets.post_p99_ms),
                                ("WS", f.delivery_ms, targets.delivery_p99_ms)):
        p99 = percentile(values, 99)
        if math.isnan(p99):
            why.append(f"no {name} samples")
        elif p99 > limit:
            why.append(f"{name} p99 {p99:.0f} > {limit:g} ms")
    return why


def next_rate(passed: Sequence[float], failed: Sequence[float], *, start: float, precision: float,
              floor: float = 1.0) -> float | None:
    """The next rate to try after these steps, or None when the best rate is known closely enough.

    Doubles from `start` until a step fails, then bisects between the highest passing rate
    (0 if none) and the lowest failing one above it; stops once the two are within
    `precision` (a fraction of the failing rate) or the failing rate is below `floor`.
    """
    if not failed:
        return start if not passed else 2 * max(passed)
    high = min(failed)
    low = max((r for r in passed if r < high), default=0.0)
    if high - low <= precision * high or high <= floor:
        return None
    return (low + high) / 2


def best(passed: Sequence[float], failed: Sequence[float]) -> float | None:
    """The highest passing rate below every failing one."""
    below = [r for r in passed if not failed or r < min(failed)]
    return max(below, default=None)


def step_line(rate: float, f: Figures, cpu_ms: float, lag_ms: list[float], why: list[str]) -> str:
    """One printed line per step."""
    def p(values: list[float], width: int = 14) -> str:
        return f"{percentile(values, 50):.1f}/{percentile(values, 99):.1f}".rjust(width)

    cpu = "   n/a" if math.isnan(cpu_ms) else f"{cpu_ms:6.2f}"
    outcome = "pass" if not why else "FAIL: " + "; ".join(why)
    return (f"{rate:9.1f} {f.completed_per_s:9.1f}  {p(f.post_ms)}  {p(f.accept_to_terminal_ms, 16)}  "
            f"{p(f.delivery_ms)}  {cpu:>12}  {p(lag_ms, 17)}  {outcome}")


HEADER = (f"{'offered/s':>9} {'done/s':>9}  {'POST p50/p99':>14}  {'terminal p50/p99':>16}  {'WS p50/p99':>14}  "
          f"{'CPU ms/order':>12}  {'proj. lag p50/p99':>17}  verdict (latencies in ms)")


def climb(args: argparse.Namespace, bodies: list[Order]) -> int:
    """Run the ladder's steps, one line each, and print the best passing rate."""
    targets = Targets(args.max_terminal_p99, args.max_post_p99, args.max_ws_p99)
    rates = iter(args.rates) if args.rates else None
    passed: list[float] = []
    failed: list[float] = []
    with contextlib.ExitStack() as stacks:
        shared = None if args.fresh else stacks.enter_context(open_target(args))
        load = (f"steps of {args.seconds:g} s open loop, {args.watchers} WebSocket watcher(s) per order, "
                f"{'a fresh stack per step' if args.fresh else f'one stack, {args.pause:g} s pause between steps'}; "
                f"pass: all complete, no gap or error, p99 terminal <= {targets.terminal_p99_ms:g} ms, "
                f"POST <= {targets.post_p99_ms:g} ms, event->WS <= {targets.delivery_p99_ms:g} ms")
        print("\n".join(describe(shared.description if shared else spawned(args), load)))
        print(HEADER, flush=True)
        for step in range(args.max_steps):
            if rates is not None:
                rate = next(rates, None)
            else:
                rate = next_rate(passed, failed, start=args.start, precision=args.precision)
            if rate is None:
                break
            if step and shared is not None:
                time.sleep(args.pause)  # let the queues of the last step drain
            with open_target(args) if shared is None else contextlib.nullcontext(shared) as target:
                f, seen = asyncio.run(measure(target, orders=max(1, round(rate * args.seconds)), rate=rate,
                                              watchers=args.watchers, bodies=bodies, timeout=args.timeout))
            why = verdict(f, targets)
            (failed if why else passed).append(rate)
            lag_ms = [s * 1000 for s in seen.lag_s]
            print(step_line(rate, f, stack_cpu_ms_per(seen, f.completed), lag_ms, why), flush=True)
    found = best(passed, failed)
    print(f"Best passing rate: {found:g} orders/s" if found is not None else "No rate passed")
    return 0 if found is not None else 1
