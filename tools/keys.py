"""`python -m tools.keys`: create, list and revoke API keys.

    python -m tools.keys create ACCOUNT [--submit-rate N] [--read-rate N] [--max-streams N]
    python -m tools.keys list [--json]
    python -m tools.keys revoke KEY_ID

A new key is printed once and stored only as a hash. Keys live in the accounts bucket on
NATS; the command talks to the NATS of a running `make run` (or `NATS_URL`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import msgspec

from shared import accounts
from shared.accounts import AccountError, ApiKey, KeyStore
from shared.clock import SystemClock
from shared.setup import SetupMissing
from shared.topology import Topology
from tools import local


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _limit(value: int | None) -> str:
    return "default" if value is None else str(value)


def render(records: list[ApiKey]) -> str:
    """The keys as a table (never the keys themselves: only their ids)."""
    header = ("KEY ID", "ACCOUNT", "CREATED", "REVOKED", "SUBMIT/W", "READ/W", "STREAMS")
    rows = [header] + [
        (r.key_id, r.account, _when(r.created_at), _when(r.revoked_at),
         _limit(r.submit_rate), _limit(r.read_rate), _limit(r.max_streams))
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def create_key(store: KeyStore, account: str, **limits: int | None) -> tuple[str, ApiKey]:
    key, record = accounts.new_key(account, SystemClock().now_ms(), **limits)
    await store.add(record)
    return key, record


async def provision(
    conn: local.Connection, key_file: Path, account: str, **limits: int | None
) -> tuple[str, bool]:
    """The key in `key_file` if it is still valid, else a new key for `account` written there (0600).

    Connects as `conn` (the admin user). Returns the key and whether it was created now.
    """
    nc = await local.connect_nats(conn, "keys")
    try:
        store = await KeyStore.open(nc.jetstream(), Topology(namespace=conn.namespace))
        if key_file.is_file():
            key = key_file.read_text().strip()
            key_id = accounts.key_id_of(key)
            record = await store.get(key_id) if key_id else None
            if record is not None and accounts.verify(key, record):
                return key, False
        key, _ = await create_key(store, account, **limits)
    finally:
        await nc.close()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    os.chmod(key_file, 0o600)
    return key, True


#: Limits of the benchmark's key: the load generator must measure the engine, not its limits.
BENCH_LIMITS = {"submit_rate": 1_000_000, "read_rate": 1_000_000, "max_streams": 1_000_000}


async def bench_key(conn: local.Connection, key_file: Path) -> str:
    """A key of the account `bench` with limits raised for load tests, kept in `key_file`."""
    key, _ = await provision(conn, key_file, "bench", **BENCH_LIMITS)
    return key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.keys", description="Manage the engine's API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key for ACCOUNT and print it (shown only once)")
    create.add_argument("account")
    create.add_argument("--submit-rate", type=int, help="submissions and cancels per window (default: the gateway's)")
    create.add_argument("--read-rate", type=int, help="reads and stream opens per window (default: the gateway's)")
    create.add_argument("--max-streams", type=int, help="open streams per gateway replica (default: the gateway's)")
    listing = commands.add_parser("list", help="list keys (ids, accounts, limits; never the keys)")
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    revoke = commands.add_parser("revoke", help="revoke a key by its id (effective within seconds everywhere)")
    revoke.add_argument("key_id")
    return parser


async def _run(args: argparse.Namespace) -> int:
    conn = local.connection("admin")
    nc = await local.connect_nats(conn, "keys")
    try:
        store = await KeyStore.open(nc.jetstream(), Topology(namespace=conn.namespace))
        if args.command == "create":
            for name in ("submit_rate", "read_rate", "max_streams"):
                value = getattr(args, name)
                if value is not None and value < 1:
                    raise AccountError(f"--{name.replace('_', '-')} must be at least 1")
            key, record = await create_key(
                store, args.account, submit_rate=args.submit_rate, read_rate=args.read_rate, max_streams=args.max_streams
            )
            print(f"key id   {record.key_id}\naccount  {record.account}\nkey      {key}", file=sys.stderr)
            print("store the key now: it is not shown again", file=sys.stderr)
            print(key)
        elif args.command == "list":
            records = await store.all()
            print(msgspec.json.encode(records).decode() if args.json else render(records))
        else:
            record = await store.revoke(args.key_id, SystemClock().now_ms())
            print(f"revoked {record.key_id} of account {record.account} at {_when(record.revoked_at)}")
    finally:
        await nc.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    local.run_command(_run(_parser().parse_args(argv)), AccountError, SetupMissing)


if __name__ == "__main__":
    main()
