"""The read model's roles on a real PostgreSQL: the projector's writes, the gateway's only reads."""

from __future__ import annotations

import asyncpg
import pytest

from services.projector.migrations import migrate
from tools import credentials, pgroles


@pytest.fixture(scope="module")
async def roles(database_url: str) -> credentials.Credentials:
    creds = credentials.generate()
    await pgroles.provision(
        database_url, reader_password=creds.reader_password, writer_password=creds.writer_password, schemas=()
    )
    return creds


async def test_the_writer_migrates_and_writes_and_the_reader_only_reads(
    database_url: str, roles: credentials.Credentials, namespace: str
) -> None:
    admin = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(credentials.role_url(database_url, pgroles.WRITER, roles.writer_password))
    reader = await asyncpg.connect(credentials.role_url(database_url, pgroles.READER, roles.reader_password))
    try:
        await pgroles.hand_over(admin, namespace)
        assert await migrate(writer, namespace)  # tables made after the grants: default privileges apply
        await writer.execute(f'insert into "{namespace}".projector_positions (name, stream_seq) values ($1, 1)', "p")
        assert await reader.fetchval(f'select stream_seq from "{namespace}".projector_positions') == 1
        for statement in (
            f'insert into "{namespace}".projector_positions (name, stream_seq) values (\'x\', 2)',
            f'update "{namespace}".projector_positions set stream_seq = 3',
            f'delete from "{namespace}".orders',
            f'truncate "{namespace}".orders',
            f'create table "{namespace}".mine (id int)',
            "create temporary table mine (id int)",
            f'create schema "{namespace}_reader"',
            f'drop table "{namespace}".orders',
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(statement)
    finally:
        await admin.execute(f'drop schema if exists "{namespace}" cascade')
        for conn in (admin, writer, reader):
            await conn.close()


async def test_the_roles_log_in_with_their_passwords_only(database_url: str, roles: credentials.Credentials) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(credentials.role_url(database_url, pgroles.READER, "guessed"))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(credentials.role_url(database_url, pgroles.WRITER, roles.reader_password))
