"""python -m bench: drive orders against a stack and print throughput, latency and CPU per order.

  python -m bench --spawn --profile zero --orders 2000 --rate 200   # open loop at a fixed rate
  python -m bench --orders 200 --rate 20                 # against the running `make run`
  python -m bench --url http://127.0.0.1:8000 --orders 200 --rate 20
  python -m bench ladder --spawn --seconds 60            # the highest rate meeting the latency targets
  python -m bench burst --spawn --orders 5000            # everything at once, 256 POSTs in flight
  python -m bench watchers --spawn --count 10000         # open streams: gateway memory and delivery

Every mode prints its conditions (machine, versions, commit, load) with its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal

from bench import cpu
from bench.conditions import describe
from bench.observe import report as cpu_report
from bench.stats import report
from bench.target import measure, open_target
from engine_client import MarketOrder

PAIRS = [("SOL", "USDC", "0.25"), ("USDC", "SOL", "40"), ("BONK", "SOL", "1000000"), ("SOL", "USDT", "0.5")]
BODIES = [MarketOrder(token_in=i, token_out=o, amount=Decimal(a)) for i, o, a in PAIRS]
MODES = ("run", "ladder", "burst", "watchers")


def _rates(text: str) -> list[float]:
    return [float(r) for r in text.split(",") if r.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--url", help="gateway of a running stack (default: that of the running `make run`)")
    where.add_argument("--spawn", action="store_true", help="start a fresh local stack for this run")
    common.add_argument("--key", help="API key to send (default: API_KEY, else a benchmark key of the running "
                        "`make run`, whose rate limits are raised for load)")
    common.add_argument("--profile", default="zero", choices=("zero", "demo"), help="simulation profile with --spawn")
    common.add_argument("--failure-rate", type=float, default=None, help="chain transient failure rate with --spawn")
    common.add_argument("--timeout", type=float, default=120.0, help="seconds an order (or phase) may take")
    common.add_argument("--projector-metrics", help="the projector's /metrics URL, for its lag (known with --spawn "
                        "and for the `make run`)")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", metavar="{run,ladder,burst,watchers}")
    run = modes.add_parser("run", parents=[common], help="open loop at --rate (the default mode)")
    run.add_argument("--orders", type=int, default=1000)
    run.add_argument("--rate", type=float, default=100.0, help="orders submitted per second (open loop)")
    run.add_argument("--watchers", type=int, default=1, help="WebSocket clients per order")
    ladder = modes.add_parser("ladder", parents=[common], help="the highest open-loop rate meeting the targets")
    ladder.add_argument("--seconds", type=float, default=20.0, help="length of each step")
    ladder.add_argument("--rates", type=_rates, help="comma-separated rates to try in order (default: double from "
                        "--start while passing, then bisect)")
    ladder.add_argument("--start", type=float, default=10.0, help="first rate when doubling")
    ladder.add_argument("--precision", type=float, default=0.1,
                        help="stop bisecting once pass and fail are this fraction of the failing rate apart")
    ladder.add_argument("--max-steps", type=int, default=12)
    ladder.add_argument("--fresh", action="store_true", help="a fresh stack per step (with --spawn)")
    ladder.add_argument("--pause", type=float, default=5.0, help="seconds between steps on one stack")
    ladder.add_argument("--watchers", type=int, default=1, help="WebSocket clients per order")
    ladder.add_argument("--max-terminal-p99", type=float, default=500.0, help="ms, accepted -> terminal")
    ladder.add_argument("--max-post-p99", type=float, default=50.0, help="ms, POST answered")
    ladder.add_argument("--max-ws-p99", type=float, default=25.0, help="ms, event -> WebSocket client")
    burst = modes.add_parser("burst", parents=[common], help="submit --orders as fast as the client can")
    burst.add_argument("--orders", type=int, default=5000)
    burst.add_argument("--in-flight", type=int, default=256, help="POSTs awaiting their answer at most")
    burst.add_argument("--watchers", type=int, default=1, help="WebSocket clients per order")
    watchers = modes.add_parser("watchers", parents=[common], help="many open streams on one gateway")
    watchers.add_argument("--count", type=int, default=10000, help="WebSocket watchers in all")
    watchers.add_argument("--per-order", type=int, default=10, help="watchers per resting order")
    watchers.add_argument("--connect-concurrency", type=int, default=200, help="WebSocket handshakes at a time")
    if not argv or argv[0] not in MODES and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]  # `python -m bench --spawn ...` is the open-loop run
    args = parser.parse_args(argv)
    if args.mode == "ladder" and args.fresh and not args.spawn:
        parser.error("--fresh needs --spawn")
    return args


def run_orders(target, args: argparse.Namespace) -> int:
    rate = args.rate if args.mode == "run" else None
    pace = f"at {rate:g}/s open loop" if rate else f"all at once, at most {args.in_flight} POSTs in flight"
    load = (f"{args.orders} orders {pace}, {args.watchers} WebSocket watcher(s) each; pairs "
            + ", ".join(f"{a} {i}->{o}" for i, o, a in PAIRS))
    f, seen = asyncio.run(measure(target, orders=args.orders, rate=rate, watchers=args.watchers, bodies=BODIES,
                                  timeout=args.timeout, in_flight=None if rate else args.in_flight))
    print("\n".join([*describe(target.description, load), *report(f), *cpu_report(seen, target.probe, f.completed)]))
    return 0 if not f.errors and f.completed == f.offered and not f.gaps else 1


def main() -> None:
    args = parse(sys.argv[1:])
    sockets = args.count + 1024 if args.mode == "watchers" else 65536
    cpu.raise_open_files(sockets)  # before --spawn: the services inherit it
    if args.mode == "ladder":
        from bench.ladder import climb

        sys.exit(climb(args, BODIES))
    with open_target(args) as target:
        if args.mode == "watchers":
            from bench.watchers import run_watchers

            sys.exit(run_watchers(target, args))
        sys.exit(run_orders(target, args))


if __name__ == "__main__":
    main()
