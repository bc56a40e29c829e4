"""The stack a benchmark drives: a fresh one (`--spawn`) or a running one, with what to observe."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

from bench import cpu
from bench.load import drive
from bench.observe import Observation, Probe
from bench.stats import Figures, figures
from engine_client import Order


@dataclass
class Target:
    url: str
    key: str
    probe: Probe
    description: str


@contextlib.contextmanager
def open_target(args: argparse.Namespace) -> Iterator[Target]:
    """Start a stack with `--spawn`, else find the running one (`--url`, or the `make run`)."""
    if args.spawn:
        from bench.stack import spawn

        extra = {} if args.failure_rate is None else {"CHAIN_FAILURE_RATE": str(args.failure_rate)}
        with spawn(args.profile, extra) as stack:
            probe = Probe(pids={name: [pid] for name, pid in stack.pids.items()}, note="spawned processes",
                          projector_metrics=f"http://127.0.0.1:{stack.ops_ports['projector']}/metrics")
            yield Target(stack.url, stack.api_key, probe, spawned(args))
        return
    yield _running(args)


def spawned(args: argparse.Namespace) -> str:
    """How a `--spawn` stack is described in the conditions."""
    return f"fresh local stack, SIM_PROFILE={args.profile}" + (
        f", CHAIN_FAILURE_RATE={args.failure_rate}" if args.failure_rate is not None else "")


async def measure(target: Target, *, orders: int, rate: float | None, watchers: int, bodies: list[Order],
                  timeout: float, in_flight: int | None = None) -> tuple[Figures, Observation]:
    """Drive `orders` against `target` and observe the stack meanwhile (see `bench.load.drive`)."""
    async with target.probe.window() as seen:
        began = time.monotonic()
        runs = await drive(target.url, key=target.key, orders=orders, rate=rate, watchers=watchers, bodies=bodies,
                           timeout=timeout, in_flight=in_flight)
    return figures(runs, began), seen


def _running(args: argparse.Namespace) -> Target:
    from tools import local
    from tools.keys import bench_key

    url, key = args.url, args.key or os.environ.get("API_KEY")
    try:
        made = local.running_stack()
    except local.NoLocalStack:
        made = None
    try:
        if url is None:
            url = local.connection("admin").gateway_url
            if not url:
                raise SystemExit("error: no gateway URL known: give --url (or set GATEWAY_URL)")
        if key is None:  # the running `make run`'s benchmark key, limits raised
            key = asyncio.run(bench_key(local.connection("admin"), local.run_dir() / "bench-key"))
    except local.NoLocalStack as exc:
        raise SystemExit(f"error: {exc}; or give --url and --key, or --spawn a fresh stack") from None
    ours = made is not None and made.gateway_url.rstrip("/") == url.rstrip("/")
    if ours or urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        pids, note = cpu.discover(made.pid if ours and made is not None else None)
    else:
        pids, note = {}, f"{url} is not on this machine"
    metrics = args.projector_metrics or ("http://127.0.0.1:9103/metrics" if ours else None)
    profile = f", SIM_PROFILE={os.environ.get('SIM_PROFILE', 'as configured there')}"
    return Target(url, key, Probe(pids=pids, note=note, projector_metrics=metrics), f"running stack at {url}{profile}")
