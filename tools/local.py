"""Finding the servers of a running `make run`, for tools and make targets.

`make run` writes `.run/stack.json` (server URLs, the gateway URL, its own pid) once
everything is up and removes it when it stops; the passwords stay in
`.run/credentials.json` (0600). `connection(role)` tells a tool where to connect and as
whom, in this order: the environment (`NATS_URL` with `NATS_USER`/`NATS_PASSWORD`,
`DATABASE_URL`, `GATEWAY_URL`), else the running `make run`; with neither it raises
`NoLocalStack` at once, instead of waiting on a default port. `connect_nats` connects
without reconnecting, so a tool fails in seconds when the server is gone.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import nats
from nats.aio.client import Client

from tools import pgroles
from tools.credentials import Credentials, role_url, write_private

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = "stack.json"
CREDENTIALS_FILE = "credentials.json"


API_KEY_FILE = "api-key"


class NoLocalStack(RuntimeError):
    """Neither the environment nor a running `make run` says where the servers are."""


class StackFile(msgspec.Struct, frozen=True, kw_only=True):
    """What a running `make run` publishes under `.run/` (no secrets)."""

    pid: int
    nats_url: str
    database_url: str  # the admin URL of its PostgreSQL (no password when local)
    gateway_url: str
    namespace: str = ""
    #: Whether the NATS server was started with the generated users (else NATS_URL was given).
    nats_users: bool = True
    #: Whether its PostgreSQL has the reader and writer roles with generated passwords.
    database_roles: bool = True


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    """Where and as whom a tool connects; empty user means none (an open server)."""

    nats_url: str
    nats_user: str = ""
    nats_password: str = ""
    database_url: str = ""
    gateway_url: str = ""
    namespace: str = ""


def run_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("RUN_DIR") or REPO_ROOT / ".run")


def publish(directory: Path, stack: StackFile) -> Path:
    """Announce a running stack (called by `make run` once it is up)."""
    path = directory / STACK_FILE
    write_private(path, msgspec.json.encode(stack))
    return path


def withdraw(directory: Path, pid: int) -> None:
    """Remove the announcement if it is still ours."""
    path = directory / STACK_FILE
    try:
        if msgspec.json.decode(path.read_bytes(), type=StackFile).pid == pid:
            path.unlink()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass


def running_stack(directory: Path | None = None) -> StackFile:
    """The `make run` announced under `directory` (default `.run/`), if its process lives."""
    directory = run_dir() if directory is None else directory
    path = directory / STACK_FILE
    hint = "start it with `make run`, or set NATS_URL (and NATS_USER/NATS_PASSWORD, DATABASE_URL)"
    try:
        stack = msgspec.json.decode(path.read_bytes(), type=StackFile)
    except FileNotFoundError:
        raise NoLocalStack(f"no running `make run` found ({path} does not exist): {hint}") from None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NoLocalStack(f"no running `make run` found ({path} unreadable: {exc}): {hint}") from None
    if not _alive(stack.pid):
        raise NoLocalStack(f"no running `make run` found (process {stack.pid} of {path} has ended): {hint}")
    return stack


def connection(role: str = "admin", environ: Mapping[str, str] | None = None, directory: Path | None = None) -> Connection:
    """Where a tool acting as `role` connects (`admin` or a service name), as whom.

    The environment wins (`NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `DATABASE_URL`,
    `GATEWAY_URL`, `ENGINE_NAMESPACE`); else the running `make run`, with the credentials
    it generated for `role` (the database URL of a service names its role: the projector's
    the writer, the gateway's the reader; admin's the admin URL). Raises `NoLocalStack`.
    """
    environ = os.environ if environ is None else environ
    if environ.get("NATS_URL"):
        return Connection(
            nats_url=environ["NATS_URL"],
            nats_user=environ.get("NATS_USER", ""),
            nats_password=environ.get("NATS_PASSWORD", ""),
            database_url=environ.get("DATABASE_URL", ""),
            gateway_url=environ.get("GATEWAY_URL", ""),
            namespace=environ.get("ENGINE_NAMESPACE", ""),
        )
    directory = run_dir(environ) if directory is None else directory
    stack = running_stack(directory)
    user = password = ""
    database_url = stack.database_url
    if stack.nats_users or stack.database_roles:
        try:
            creds = msgspec.json.decode((directory / CREDENTIALS_FILE).read_bytes(), type=Credentials)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NoLocalStack(f"`make run` is running but its credentials are unreadable: {exc}") from None
        if stack.nats_users:
            user, password = role, creds.nats.get(role, "")
        if stack.database_roles and role == "projector":
            database_url = role_url(stack.database_url, pgroles.WRITER, creds.writer_password)
        elif stack.database_roles and role == "gateway":
            database_url = role_url(stack.database_url, pgroles.READER, creds.reader_password)
    return Connection(
        nats_url=environ.get("NATS_URL") or stack.nats_url,
        nats_user=user,
        nats_password=password,
        database_url=environ.get("DATABASE_URL") or database_url,
        gateway_url=environ.get("GATEWAY_URL") or stack.gateway_url,
        namespace=environ.get("ENGINE_NAMESPACE", stack.namespace),
    )


async def connect_nats(conn: Connection, name: str, *, timeout: float = 3.0) -> Client:
    """Connect once, without reconnecting: a tool should fail fast, not wait for a server."""
    return await nats.connect(
        conn.nats_url,
        name=name,
        user=conn.nats_user or None,
        password=conn.nats_password or None,
        connect_timeout=timeout,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )


def api_key(environ: Mapping[str, str] | None = None) -> str:
    """The API key a tool sends: `API_KEY`, else the one `make run` wrote to `.run/api-key`."""
    environ = os.environ if environ is None else environ
    if environ.get("API_KEY"):
        return environ["API_KEY"]
    path = run_dir(environ) / API_KEY_FILE
    try:
        return path.read_text().strip()
    except OSError:
        raise NoLocalStack(f"no API key: set API_KEY, or start `make run` (it writes {path})") from None


def run_command(command: Coroutine[Any, Any, int], *expected: type[BaseException]) -> NoReturn:
    """Exit with what a tool's `command` returns; `expected` errors (and a missing stack) are one line and exit 2."""
    try:
        sys.exit(asyncio.run(command))
    except (NoLocalStack, *expected) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def environment(conn: Connection) -> dict[str, str]:
    """The variables that point a service's code (or a tool) at `conn`."""
    env = {"NATS_URL": conn.nats_url, "NATS_USER": conn.nats_user, "NATS_PASSWORD": conn.nats_password}
    if conn.database_url:
        env["DATABASE_URL"] = conn.database_url
    if conn.gateway_url:
        env["GATEWAY_URL"] = conn.gateway_url
    env["ENGINE_NAMESPACE"] = conn.namespace
    return env


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.local exec ROLE -- COMMAND...`: run COMMAND against the running stack as ROLE."""
    import argparse
    import sys

    cli = argparse.ArgumentParser(prog="python -m tools.local", description=main.__doc__)
    sub = cli.add_subparsers(dest="action", required=True)
    run = sub.add_parser("exec", help="run a command with the stack's URLs and ROLE's credentials in its environment")
    run.add_argument("role", choices=("admin", "gateway", "router", "executor", "projector"))
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = cli.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        cli.error("no command given")
    try:
        conn = connection(args.role)
    except NoLocalStack as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    os.execvpe(command[0], command, {**os.environ, **environment(conn)})
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
