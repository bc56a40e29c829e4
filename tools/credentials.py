"""Generated credentials of a local stack: one NATS user per service plus admin, two database roles.

`make run` keeps them in `.run/credentials.json` (mode 0600), made at its first start and
reused after; test fixtures and `bench --spawn` make throw-away ones. `service_env` is
what each service is started with: its own NATS user and, for the gateway and the
projector only, a database URL naming the reader or the writer role.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from shared.natsauth import USERS
from tools import pgroles


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    nats: dict[str, str]  # user -> password
    reader_password: str
    writer_password: str


def generate() -> Credentials:
    return Credentials(
        nats={user: secrets.token_urlsafe(24) for user in USERS},
        reader_password=secrets.token_urlsafe(24),
        writer_password=secrets.token_urlsafe(24),
    )


def load_or_create(path: Path) -> Credentials:
    """The credentials kept in `path`, created (mode 0600) if it does not exist yet."""
    if path.is_file():
        found = msgspec.json.decode(path.read_bytes(), type=Credentials)
        if set(found.nats) >= set(USERS):
            return found
    creds = generate()
    write_private(path, msgspec.json.encode(creds))
    return creds


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only, never visible with wider rights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def role_url(admin_url: str, role: str, password: str) -> str:
    """`admin_url` with `role` and `password` in place of its user."""
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_env(creds: Credentials, service: str, *, admin_database_url: str | None) -> dict[str, str]:
    """NATS_USER/NATS_PASSWORD and, for gateway and projector, the role's DATABASE_URL."""
    env = {"NATS_USER": service, "NATS_PASSWORD": creds.nats[service]}
    if admin_database_url is not None:
        if service == "gateway":
            env["DATABASE_URL"] = role_url(admin_database_url, pgroles.READER, creds.reader_password)
        elif service == "projector":
            env["DATABASE_URL"] = role_url(admin_database_url, pgroles.WRITER, creds.writer_password)
    return env
