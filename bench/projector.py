"""python -m bench.projector: how fast the projector writes batches into PostgreSQL.

Drives `Projector.apply` (lock, load, fold, write, as the serving projector runs it) with
the events of many orders interleaved as the log holds them (about 6 events per order,
the stories of the projector tests), cut into batches of each size, into a fresh schema
of a PostgreSQL started for the run. Prints events/s, the statements sent per batch (each
one round trip; BEGIN and COMMIT count), and the CPU time per event of this process and
of the PostgreSQL backend serving it. NATS is not involved: no batch has gaps.

  python -m bench.projector
  python -m bench.projector --sizes 1 10 100 500 --events 6000 --durable
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg

from services.projector import store
from services.projector.migrations import migrate
from services.projector.service import Projector
from shared.topology import Topology
from tests.unit.test_projector_fold import interleaved_log
from tools.devservers import start_postgres


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.projector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 500], help="events per batch")
    parser.add_argument("--events", type=int, default=6000, help="events applied per batch size (about)")
    parser.add_argument("--history", type=int, default=100_000,
                        help="finished orders in the table beforehand (analyzed), so plans are those of a used read model")
    parser.add_argument("--durable", action="store_true", help="fsync on (default off: CPU and round trips only)")
    parser.add_argument("--database-url", help="a running PostgreSQL instead of one started here (must be local"
                        " for the backend's CPU time)")
    return parser.parse_args()


class Trips:
    """Counts the statements asyncpg sends: each waits for its answer, so each is one round trip."""

    def __init__(self) -> None:
        self.count = 0
        self._execute = asyncpg.Connection.execute
        self._do_execute = asyncpg.Connection._do_execute

    def __enter__(self) -> "Trips":
        trips, execute, do_execute = self, self._execute, self._do_execute

        async def counted_execute(conn, query, *args, **kwargs):
            if not args:  # simple protocol (BEGIN, COMMIT); with args it goes through _do_execute
                trips.count += 1
            return await execute(conn, query, *args, **kwargs)

        async def counted_do_execute(conn, *args, **kwargs):
            trips.count += 1
            return await do_execute(conn, *args, **kwargs)

        asyncpg.Connection.execute = counted_execute
        asyncpg.Connection._do_execute = counted_do_execute
        return self

    def __exit__(self, *exc) -> None:
        asyncpg.Connection.execute = self._execute
        asyncpg.Connection._do_execute = self._do_execute


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_HISTORY = (
    "insert into orders (order_id, order_type, status, token_in, token_out, amount_in, slippage_bps, created_at,"
    " updated_at, last_seq, last_stream_seq, state, account) select 'h' || g, 'market', 'confirmed', 'SOL', 'USDC',"
    " 1, 50, now(), now(), 7, g, '{}', 'bench' from generate_series(1, $1::int) g"
)


async def one_size(url: str, size: int, events: int, history: int) -> str:
    schema = f"bench_{size}"
    conn = await asyncpg.connect(url)
    await conn.execute(f"drop schema if exists {schema} cascade")
    await migrate(conn, schema)
    await conn.execute(f"set search_path to {schema}")
    await conn.execute(_HISTORY, history)
    await conn.execute("analyze orders")
    await conn.close()
    pool = await store.create_pool(url, schema, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("select pg_backend_pid()")
        log = interleaved_log(max(events // 6, 1))
        batches = [log[i : i + size] for i in range(0, len(log), size)]
        # No NATS: `apply` reads the log only for gaps, and these batches have none.
        projector = Projector(pool, None, None, Topology(namespace="bench"), schema)  # type: ignore[arg-type]
        await projector.apply(batches[0])  # statements prepared, caches warm
        with Trips() as trips:
            began, cpu, pg_cpu = time.perf_counter(), time.process_time(), cpu_seconds(backend)
            for batch in batches[1:]:
                projection = await projector.apply(batch)
                assert not projection.gaps and not projection.rejects
            seconds = time.perf_counter() - began
            cpu, pg_cpu = time.process_time() - cpu, cpu_seconds(backend) - pg_cpu
        n = len(log) - len(batches[0])
        return (f"  {size:>5}  {n / seconds:>9,.0f}  {trips.count / (len(batches) - 1):>11.1f}"
                f"  {1e6 * cpu / n:>15.1f}  {1e6 * pg_cpu / n:>15.1f}  ({n} events, {max(events // 6, 1)} orders)")
    finally:
        await pool.close()


async def run(args: argparse.Namespace, url: str) -> None:
    print("Conditions")
    print(f"  PostgreSQL  {'given URL' if args.database_url else 'started here'},"
          f" fsync {'on' if args.durable or args.database_url else 'off'}; one connection; no NATS (no gaps);"
          f" {args.history:,} finished orders in the table beforehand")
    print(f"  machine     {os.cpu_count()} cores, {platform.system()} {platform.release()},"
          f" Python {platform.python_version()} (client and PostgreSQL share it)")
    print("  batch   events/s  trips/batch  projector us/ev  postgres us/ev")
    for size in args.sizes:
        print(await one_size(url, size, args.events, args.history), flush=True)


def main() -> None:
    args = parse()
    if args.database_url:
        asyncio.run(run(args, args.database_url))
        return
    base = Path(tempfile.mkdtemp(prefix="bench-projector-"))
    try:
        with start_postgres(data_dir=base / "pg", durable=args.durable) as server:
            asyncio.run(run(args, server.url))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
