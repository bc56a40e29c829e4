"""PostgreSQL roles of the read model: the projector writes, the gateway only reads.

`engine_writer` owns the read model's schema and tables (the projector runs the
migrations as it); `engine_reader` may connect and SELECT, on every table the writer
creates now or later (default privileges), and nothing else. Router and executor have no
database role at all. `provision` runs as an admin (superuser or CREATEROLE) from the
set-up step (`tools.setup`), `make run` and the test fixtures; it is safe to repeat and
sets the given passwords each time.
"""

from __future__ import annotations

import asyncpg

READER = "engine_reader"
WRITER = "engine_writer"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def provision(
    admin_url: str, *, reader_password: str, writer_password: str, schemas: tuple[str, ...] = ("public",)
) -> None:
    """Create or update both roles in the admin URL's database, and hand them `schemas`."""
    conn = await asyncpg.connect(admin_url)
    try:
        # Roles are cluster-wide: two set-up steps at once (test workers) must not race.
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(hashtext('engine roles'))")
            for role, password in ((WRITER, writer_password), (READER, reader_password)):
                exists = await conn.fetchval("select 1 from pg_roles where rolname = $1", role)
                verb = "alter" if exists else "create"
                # Passwords cannot be bind parameters in DDL; quote_literal escapes them.
                literal = await conn.fetchval("select quote_literal($1::text)", password)
                await conn.execute(f"{verb} role {_ident(role)} with login password {literal}")
            database = _ident(await conn.fetchval("select current_database()"))
            await conn.execute(f"grant connect, create, temporary on database {database} to {WRITER}")
            await conn.execute(f"grant connect on database {database} to {READER}")
            # PUBLIC may make temporary tables by default: the reader makes nothing at all.
            await conn.execute(f"revoke create, temporary on database {database} from public, {READER}")
            # Whatever the writer creates later (schemas, tables) the reader may read.
            await conn.execute(f"alter default privileges for role {WRITER} grant usage on schemas to {READER}")
            await conn.execute(f"alter default privileges for role {WRITER} grant select on tables to {READER}")
            for schema in schemas:
                await hand_over(conn, schema)
    finally:
        await conn.close()


async def hand_over(conn: asyncpg.Connection, schema: str) -> None:
    """Make the writer own `schema` and what is in it (a cluster from before the roles)."""
    name = _ident(schema)
    await conn.execute(f"create schema if not exists {name} authorization {WRITER}")
    await conn.execute(f"alter schema {name} owner to {WRITER}")
    await conn.execute(f"grant usage on schema {name} to {READER}")
    rows = await conn.fetch(
        "select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = $1 and c.relkind in ('r', 'p', 'S', 'v', 'm')",
        schema,
    )
    for row in rows:
        kind = "sequence" if row["relkind"] == "S" else "table"
        await conn.execute(f"alter {kind} {name}.{_ident(row['relname'])} owner to {WRITER}")
    await conn.execute(f"grant select on all tables in schema {name} to {READER}")
    # Before PostgreSQL 15 anyone may create in `public`.
    await conn.execute(f"revoke create on schema {name} from public, {READER}")
