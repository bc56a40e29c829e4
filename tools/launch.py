"""Launch a pool now: ``python -m tools.launch PUMP-USDC --price 0.002 --depth 50000``.

Publishes a `PoolLaunch` on the launch log (`shared.launchlog`) for the current slot of
the same slot clock the services use (``SIM_GENESIS_MS``, ``SLOT_MS``), or for ``--at``.
Every router and executor that follows the log lists the new pools from that slot on.
It connects as the NATS admin user to the servers of a running ``make run`` (found
under ``.run/``, `tools.local`), or to ``NATS_URL`` with ``NATS_USER``/``NATS_PASSWORD``
when set, and fails at once when there is neither. ``ENGINE_NAMESPACE`` is read from the
environment unless given.

Exit status: 0 when the pair is launched (by this call, or before with the very same
launch), 1 when an earlier, different launch holds the pair (the first one wins) or NATS
cannot be reached, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

import nats.errors

from shared.clock import SystemClock
from shared.launchlog import LaunchPublished, publish_launch
from shared.market.config import DEFAULT_CONFIG
from shared.market.launches import DlmmParams, LaunchError, PoolLaunch, encode_launch, listed_pair, new_launch
from shared.market.schedule import parse_when
from shared.settings import SettingsError, load
from shared.simulation import SimSettings
from shared.setup import SetupMissing, require_streams
from shared.topology import Topology
from tools.local import Connection, NoLocalStack, connect_nats, connection


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tools.launch",
        description="Launch pools for a pair that has none yet, from the current slot.",
    )
    cli.add_argument("pair", help="BASE-QUOTE, e.g. PUMP-USDC")
    cli.add_argument("--price", help="quote tokens per base token at launch (default: from reference prices)")
    cli.add_argument("--depth", help="quote tokens of liquidity on each venue (default: $50,000 worth)")
    cli.add_argument(
        "--venue", action="append", dest="venues",
        help="raydium-cpmm (default), meteora-dlmm, raydium, meteora or both; may be repeated",
    )
    cli.add_argument("--bin-step", type=int, help="DLMM bin step in basis points (default 50)")
    cli.add_argument("--at", default="now", help="when the pools list: now (default), +30s, +150slots or a slot")
    cli.add_argument("--nats-url", help="NATS server (default: NATS_URL, else the running `make run`)")
    cli.add_argument("--namespace", help="engine namespace (default: ENGINE_NAMESPACE)")
    cli.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        settings = load(SimSettings)
    except SettingsError as exc:
        cli.error(str(exc))
    try:
        where = connection("admin", {**os.environ, "NATS_URL": args.nats_url} if args.nats_url else None)
    except NoLocalStack as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    namespace = args.namespace if args.namespace is not None else (where.namespace or settings.engine_namespace)
    topology = Topology(namespace=namespace)
    slot = settings.slot_clock(SystemClock()).current_slot()
    try:
        launch = build_launch(args, slot, settings.slot_ms)
    except LaunchError as exc:
        cli.error(str(exc))
    try:
        result = asyncio.run(publish(where, topology, launch))
    except SetupMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        print(f"error: cannot launch through NATS at {where.nats_url}: {exc!r}", file=sys.stderr)
        return 1
    print(report(result, launch, json_output=args.json))
    return 0 if result.launch == launch else 1


def build_launch(args: argparse.Namespace, now_slot: int, slot_ms: int) -> PoolLaunch:
    venues = ",".join(args.venues) if args.venues else "raydium-cpmm"
    launch = new_launch(
        args.pair,
        listed_at_slot=parse_when(args.at, now_slot, slot_ms),
        price=args.price,
        depth=args.depth,
        venues=venues,
        dlmm=None if args.bin_step is None else DlmmParams(bin_step=args.bin_step),
    )
    if (taken := listed_pair(launch, DEFAULT_CONFIG.pairs)) is not None:
        raise LaunchError(f"{taken.pair_id} has pools from genesis; only a pair without pools can launch")
    return launch


async def publish(where: Connection, topology: Topology, launch: PoolLaunch) -> LaunchPublished:
    nc = await connect_nats(where, "launch")
    try:
        js = nc.jetstream()
        await require_streams(js, topology.launches()[0])
        return await publish_launch(js, topology, launch)
    finally:
        await nc.close()


def report(result: LaunchPublished, launch: PoolLaunch, *, json_output: bool) -> str:
    stream = f"stream sequence {result.stream_seq}"
    if json_output:
        outcome = {
            "created": result.created,
            "applied": result.launch == launch,
            "streamSeq": result.stream_seq,
            "launch": json.loads(encode_launch(result.launch)),
        }
        return json.dumps(outcome)
    if result.created:
        return f"launched {launch.describe()} ({stream})"
    if result.launch == launch:
        return f"already launched, nothing changed: {launch.describe()} ({stream})"
    return (
        f"not launched: {result.launch.pair_id} was launched before and the first launch wins: "
        f"{result.launch.describe()} ({stream})"
    )


if __name__ == "__main__":
    sys.exit(main())
