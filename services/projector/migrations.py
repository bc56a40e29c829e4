"""Versioned schema migrations: `migrations/NNN_name.sql`, applied in order, once.

Every projector replica runs `migrate` at start. The whole run is one transaction under
an advisory lock keyed by the schema, so replicas starting together apply each version
exactly once: the first applies, the others wait and then find nothing pending.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

DIRECTORY = Path(__file__).with_name("migrations")
MIGRATIONS_LOCK = 0x6D696772  # advisory lock class of migrations; the second key is the schema
_NAME = re.compile(r"([0-9]+)_[A-Za-z0-9_-]+\.sql")  # fullmatch: no trailing newline, ASCII digits


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(directory: Path = DIRECTORY) -> list[Migration]:
    """The migrations in `directory`, by version; a repeated version is an error."""
    found: dict[int, Migration] = {}
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"migration version {version} is defined twice: {found[version].name}, {path.name}")
        found[version] = Migration(version=version, name=path.name, sql=path.read_text())
    return [found[v] for v in sorted(found)]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations to `schema` (created if missing); return their versions."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", MIGRATIONS_LOCK, schema)
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when
        # the schema exists, which a service role may not have.
        if not await conn.fetchval("select exists (select 1 from pg_namespace where nspname = $1)", schema):
            await conn.execute(f"create schema {quote_ident(schema)}")
        await conn.execute(f"set local search_path to {quote_ident(schema)}")
        await conn.execute(
            "create table if not exists schema_migrations"
            " (version int primary key, applied_at timestamptz not null default now())"
        )
        done = {row["version"] for row in await conn.fetch("select version from schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute("insert into schema_migrations (version) values ($1)", migration.version)
            applied_now.append(migration.version)
            log.info("migration applied", extra={"migration": migration.name, "schema": schema})
    return applied_now
