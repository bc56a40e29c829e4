"""python -m bench: drive orders against a stack and print throughput and latency.

  python -m bench --spawn --profile zero --orders 2000 --rate 200
  python -m bench --orders 200 --rate 20                 # against the running `make run`
  python -m bench --url http://127.0.0.1:8000 --orders 200 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time

from bench.load import drive
from bench.stats import summary

PAIRS = [("SOL", "USDC", "0.25"), ("USDC", "SOL", "40"), ("BONK", "SOL", "1000000"), ("SOL", "USDT", "0.5")]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="gateway of a running stack (default: that of the running `make run`)")
    where.add_argument("--spawn", action="store_true", help="start a fresh local stack for this run")
    parser.add_argument("--key", help="API key to send (default: API_KEY, else a benchmark key of the running "
                        "`make run`, whose rate limits are raised for load)")
    parser.add_argument("--profile", default="zero", choices=("zero", "demo"), help="simulation profile with --spawn")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="orders submitted per second (open loop)")
    parser.add_argument("--watchers", type=int, default=1, help="WebSocket clients per order")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds an order may take")
    parser.add_argument("--failure-rate", type=float, default=None, help="chain transient failure rate with --spawn")
    return parser.parse_args()


def conditions(args: argparse.Namespace, url: str) -> list[str]:
    target = f"fresh local stack, SIM_PROFILE={args.profile}" if args.spawn else f"running stack at {url}"
    if args.spawn and args.failure_rate is not None:
        target += f", CHAIN_FAILURE_RATE={args.failure_rate}"
    return [
        f"  target      {target}",
        f"  load        {args.orders} orders at {args.rate:g}/s open loop, {args.watchers} WebSocket watcher(s) each",
        f"  pairs       {', '.join(f'{a} {i}->{o}' for i, o, a in PAIRS)}",
        f"  machine     {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
        " (client, services, NATS and PostgreSQL share it)",
    ]


async def run(args: argparse.Namespace, url: str, key: str) -> int:
    bodies = [{"tokenIn": i, "tokenOut": o, "amount": a} for i, o, a in PAIRS]
    began = time.monotonic()
    runs = await drive(url, key=key, orders=args.orders, rate=args.rate, watchers=args.watchers, bodies=bodies,
                       timeout=args.timeout)
    accepted = [r for r in runs if r.http_status == 202]
    done = [r for r in runs if r.terminal_status]
    last_post = max((r.post_started + (r.post_ms or 0) / 1000 for r in accepted), default=began)
    last_done = max((r.terminal_at for r in done), default=began)
    by_status: dict[str, int] = {}
    for r in done:
        by_status[r.terminal_status] = by_status.get(r.terminal_status, 0) + 1
    errors = [r.error for r in runs if r.error]
    print("Conditions")
    print("\n".join(conditions(args, url)))
    print("Throughput")
    print(f"  accepted    {len(accepted) / max(last_post - began, 1e-9):8.1f} orders/s "
          f"({len(accepted)}/{len(runs)} in {last_post - began:.1f} s)")
    print(f"  completed   {len(done) / max(last_done - began, 1e-9):8.1f} orders/s ({len(done)} terminal in "
          f"{last_done - began:.1f} s, first POST to last terminal: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(by_status.items()))})")
    print("Latency (ms)")
    print(summary("POST /api/orders/execute", [r.post_ms for r in accepted if r.post_ms is not None]))
    print(summary("accepted -> terminal", [r.accept_to_terminal_ms for r in done if r.accept_to_terminal_ms is not None]))
    print(summary("event -> WebSocket client", [d for r in runs for d in r.delivery_ms]))
    print(f"Stream integrity: {sum(r.gaps for r in runs)} sequence gaps or duplicates; {len(errors)} errors")
    for error in errors[:5]:
        print(f"  {error}")
    return 0 if not errors and len(done) == len(runs) else 1


def main() -> None:
    args = parse()
    if args.spawn:
        from bench.stack import spawn

        extra = {} if args.failure_rate is None else {"CHAIN_FAILURE_RATE": str(args.failure_rate)}
        with spawn(args.profile, extra) as stack:
            sys.exit(asyncio.run(run(args, stack.url, stack.api_key)))
    from tools import local
    from tools.keys import bench_key

    url, key = args.url, args.key or os.environ.get("API_KEY")
    try:
        if url is None:
            url = local.connection("admin").gateway_url
            if not url:
                sys.exit("error: no gateway URL known: give --url (or set GATEWAY_URL)")
        if key is None:  # the running `make run`'s benchmark key, limits raised
            key = asyncio.run(bench_key(local.connection("admin"), local.run_dir() / "bench-key"))
    except local.NoLocalStack as exc:
        sys.exit(f"error: {exc}; or give --url and --key, or --spawn a fresh stack")
    sys.exit(asyncio.run(run(args, url, key)))


if __name__ == "__main__":
    main()
