"""Schema migrations of the read model against a real PostgreSQL: once each, also when raced."""

from __future__ import annotations

import asyncio

import asyncpg

from services.projector.migrations import discover, migrate


async def test_migrations_apply_once_when_run_twice(database_url: str, pg_schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, pg_schema) == [m.version for m in discover()]
        assert await migrate(conn, pg_schema) == []
        tables = await conn.fetch("select tablename from pg_tables where schemaname = $1 order by 1", pg_schema)
        assert [t["tablename"] for t in tables] == [
            "order_events",
            "orders",
            "projector_positions",
            "projector_rejects",
            "schema_migrations",
        ]
    finally:
        await conn.close()


async def test_migrations_run_concurrently_apply_each_version_once(database_url: str, pg_schema: str) -> None:
    schema = f"{pg_schema}_fresh"  # does not exist yet: the first runner creates it
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(conn, schema) for conn in conns))
        assert sorted(applied, key=len) == [[], [], [], [m.version for m in discover()]]
        versions = await conns[0].fetch(f'select version from "{schema}".schema_migrations order by 1')
        assert [v["version"] for v in versions] == [m.version for m in discover()]
    finally:
        await conns[0].execute(f'drop schema if exists "{schema}" cascade')
        for conn in conns:
            await conn.close()


async def test_refused_events_stored_before_version_3_leave_the_history_and_stay_rejects(
    database_url: str, pg_schema: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, pg_schema, [m for m in discover() if m.version < 3])
        await conn.execute(f'set search_path to "{pg_schema}"')
        await conn.executemany(
            "insert into order_events (order_id, seq, stream_seq, event_type, occurred_at, payload)"
            " values ($1, $2, $3, $4, now(), '{}')",
            [("o1", 1, 1, "OrderAccepted"), ("o1", 2, 2, "OrderConfirmed")],
        )
        await conn.execute(
            "insert into projector_rejects (order_id, seq, stream_seq, event_type, reason)"
            " values ('o1', 2, 2, 'OrderConfirmed', 'cannot follow pending')"
        )
        assert 3 in await migrate(conn, pg_schema)
        assert [r["seq"] for r in await conn.fetch("select seq from order_events order by seq")] == [1]
        assert await conn.fetchval("select count(*) from projector_rejects") == 1
    finally:
        await conn.close()
