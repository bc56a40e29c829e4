"""Fixtures shared by every test: real NATS and PostgreSQL, and per-test unique names.

`NATS_URL` / `DATABASE_URL` in the environment point the tests at running servers;
otherwise the session starts its own on random ports in a temporary directory, on first
use. A server that cannot start fails the run with its log; nothing is ever skipped.

Tests here act as the admin (no NATS user, the PostgreSQL superuser), and the `jetstream`
fixture runs the set-up step's provisioning. The services' own users and roles are
exercised where they matter: tests/e2e (each stack on its own nats-server with the
generated users, the gateway and projector on the reader and writer roles) and
tests/integration/test_nats_permissions.py and test_database_roles.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tools import credentials, pgroles
from tools.devservers import DevServerError, ServerProcess, start_nats, start_postgres


def _serve(prefix: str, start: Callable[[Path], ServerProcess]) -> Iterator[str]:
    # A fresh directory under the system temp dir, not pytest's basetemp: as root,
    # PostgreSQL runs as another user, who must be able to reach its cluster directory.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        try:
            server = start(base)
        except DevServerError as error:
            pytest.fail(str(error), pytrace=False)
        with server:
            yield server.url
    finally:
        shutil.rmtree(base, ignore_errors=True)


_OPS = Path(__file__).parent / "ops"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`tests/ops` runs only when named (`make test-ops`): it needs Chromium and Prometheus."""
    if collection_path == _OPS:
        named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
        return not any(path == _OPS or _OPS in path.parents for path in named)
    return None


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a JetStream-enabled nats-server shared by the session."""
    if url := os.environ.get("NATS_URL"):
        yield url
    else:
        yield from _serve("engine-test-nats-", lambda base: start_nats(store_dir=base))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a PostgreSQL database shared by the session (fsync off when started here)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
    else:
        yield from _serve(
            "engine-test-pg-", lambda base: start_postgres(data_dir=base / "pg", durable=False)
        )


@pytest.fixture(scope="session")
async def stack_credentials(database_url) -> credentials.Credentials:
    """NATS users' passwords for every stack, and the database roles, provisioned once."""
    creds = credentials.generate()
    await pgroles.provision(
        database_url, reader_password=creds.reader_password, writer_password=creds.writer_password, schemas=()
    )
    return creds


@pytest.fixture
def namespace() -> str:
    """A short lowercase token unique to this test, to name streams, subjects and schemas."""
    return "t" + secrets.token_hex(4)


@pytest.fixture
async def pg_schema(database_url: str, namespace: str) -> AsyncIterator[str]:
    """A schema of its own in `database_url` for this test, dropped afterwards."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{namespace}"')
    finally:
        await conn.close()
    yield namespace
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def jetstream(nats_url: str, namespace: str) -> AsyncIterator[tuple]:
    """A connection with what the set-up step makes (streams, consumers, buckets) under this test's namespace.

    Yields `(nc, js, topology)`; afterwards every stream and bucket of the namespace goes.
    """
    import nats

    from shared.topology import Topology
    from tools.setup import provision_nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    topology = Topology(namespace=namespace)
    await provision_nats(js, topology)
    yield nc, js, topology
    prefix = f"{namespace.upper()}_"
    for info in await js.streams_info():
        name = info.config.name
        if name.startswith(prefix) or name in (f"KV_{topology.chain_bucket}", f"OBJ_{topology.book_bucket}"):
            await js.delete_stream(name)
    await nc.close()
