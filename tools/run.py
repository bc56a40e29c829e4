"""`make run`: NATS, PostgreSQL and the four services on one machine, stopped by Ctrl-C.

NATS (JetStream store in `.run/nats`) and PostgreSQL (cluster in `.run/pg`, kept between
runs) are started from `tools.devservers` unless `NATS_URL` / `DATABASE_URL` point at servers
already running. Their ports default to 14222 and 15432 when free (the usual 4222 and 5432
are often taken by system services), else any free port; `RUN_NATS_PORT` / `RUN_PG_PORT`
fix them. NATS monitoring is off unless `RUN_NATS_MONITOR_PORT` asks for it, and then
listens on 127.0.0.1 only. The servers it starts get generated credentials, kept in `.run/credentials.json`
(mode 0600): nats-server runs with one user per service and an admin
(`shared.natsauth`), PostgreSQL gets a writer role for the projector and a read-only role
for the gateway (`tools.pgroles`). Then the admin set-up step (`tools.setup`) creates the
streams, consumers and buckets, and each service runs as `python -m services.<name>` with
the URLs and its own credentials in its environment; its output is shown line by line
behind its name. Once all is started, `.run/stack.json` tells tools where the servers are
(`tools.local`); it goes when the stack stops.

With `NATS_URL`, the services use that URL as given (and `NATS_USER`/`NATS_PASSWORD` if
set, which the set-up step uses as the admin); with `DATABASE_URL`, the gateway and the
projector both get it. Per-service users and roles on servers you run yourself are
yours to create (deploy/README.md shows how).

On SIGINT or SIGTERM the services get SIGTERM, then SIGKILL after a grace period, then
PostgreSQL and NATS stop, and the exit status is 0. A service that exits on its own takes the
whole stack down with exit status 1. A second Ctrl-C kills the services at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import msgspec

from shared.natsauth import ADMIN, SERVICES, authorization
from shared.topology import Topology
from tools import credentials, keys, local, pgroles
from tools.devservers import DevServerError, ServerProcess, port_is_free
from tools.devservers import start_nats, start_postgres
from tools.setup import SetupSettings
from tools.setup import run as run_setup
from tools.supervisor import STOP_TIMEOUT, Console, ServiceSpec, supervise

SERVICE_NAMES = ("gateway", "router", "executor", "projector")
DEFAULT_NATS_PORT = 14222
DEFAULT_PG_PORT = 15432
LOCAL_ACCOUNT = "local"
REPO_ROOT = Path(__file__).resolve().parents[1]

def default_services() -> list[ServiceSpec]:
    """The four engine services, each run with this interpreter."""
    return [
        ServiceSpec(name=name, argv=(sys.executable, "-m", f"services.{name}"))
        for name in SERVICE_NAMES
    ]


def _pick_port(environ: Mapping[str, str], variable: str, preferred: int) -> int:
    if environ.get(variable):
        return int(environ[variable])
    return preferred if port_is_free(preferred) else 0


class Servers(msgspec.Struct, kw_only=True):
    """The servers of the stack and the credentials generated for them (None: given by URL)."""

    nats_url: str
    database_url: str
    creds: credentials.Credentials | None = None
    nats_users: bool = False
    database_roles: bool = False
    api_key: str = ""  # the local account's key, in `.run/api-key`

    def service_env(self, service: str) -> dict[str, str]:
        """A service's own NATS user and database URL (gateway: reader, projector: writer)."""
        env: dict[str, str] = {}
        if self.creds is not None and self.nats_users and service in self.creds.nats:
            env.update(NATS_USER=service, NATS_PASSWORD=self.creds.nats[service])
        if self.creds is not None and self.database_roles and service in ("gateway", "projector"):
            url = credentials.service_env(self.creds, service, admin_database_url=self.database_url)
            env["DATABASE_URL"] = url["DATABASE_URL"]
        return env


def _start_servers(
    stack: contextlib.ExitStack, environ: Mapping[str, str], run_dir: Path, console: Console
) -> Servers:
    topology = Topology(namespace=environ.get("ENGINE_NAMESPACE", ""))
    own_nats, own_pg = not environ.get("NATS_URL"), not environ.get("DATABASE_URL")
    creds = credentials.load_or_create(run_dir / local.CREDENTIALS_FILE) if own_nats or own_pg else None
    if not own_nats:
        nats_url = environ["NATS_URL"]
        console.say(f"NATS        {nats_url} (from NATS_URL)")
    else:
        assert creds is not None
        port = _pick_port(environ, "RUN_NATS_PORT", DEFAULT_NATS_PORT)
        # Monitoring only on request, and then on the loopback like the client port.
        monitor = int(environ["RUN_NATS_MONITOR_PORT"]) if environ.get("RUN_NATS_MONITOR_PORT") else None
        nats = start_nats(
            store_dir=run_dir / "nats", port=port, config=authorization(topology, creds.nats), monitor_port=monitor
        )
        stack.callback(_stop_server, nats, console, "NATS")
        nats_url = nats.url
        _announce(console, "NATS      ", nats, run_dir / "nats")
    if not own_pg:
        database_url = environ["DATABASE_URL"]
        console.say(f"PostgreSQL  {database_url} (from DATABASE_URL)")
    else:
        assert creds is not None
        port = _pick_port(environ, "RUN_PG_PORT", DEFAULT_PG_PORT)
        pg = start_postgres(data_dir=run_dir / "pg", port=port)
        stack.callback(_stop_server, pg, console, "PostgreSQL")
        database_url = pg.url
        _announce(console, "PostgreSQL", pg, run_dir / "pg")
    servers = Servers(nats_url=nats_url, database_url=database_url, creds=creds, nats_users=own_nats, database_roles=own_pg)
    servers.api_key = _set_up(servers, environ, topology, console, run_dir / local.API_KEY_FILE)
    return servers


def _set_up(
    servers: Servers, environ: Mapping[str, str], topology: Topology, console: Console, key_file: Path
) -> str:
    """The admin step before any service starts: roles, streams, consumers, buckets; the local key."""
    creds = servers.creds
    if servers.nats_users:
        assert creds is not None
        user, password = ADMIN, creds.nats[ADMIN]
    else:
        user, password = environ.get("NATS_USER", ""), environ.get("NATS_PASSWORD", "")
    settings = SetupSettings(
        nats_url=servers.nats_url,
        nats_user=user,
        nats_password=password,
        engine_namespace=topology.namespace,
        stream_replicas=int(environ.get("STREAM_REPLICAS") or 1),
        setup_database_url=servers.database_url if servers.database_roles else "",
        reader_database_password=creds.reader_password if creds else "",
        writer_database_password=creds.writer_password if creds else "",
    )
    try:
        asyncio.run(asyncio.wait_for(run_setup(settings), 30))
        admin = local.Connection(
            nats_url=settings.nats_url, nats_user=settings.nats_user, nats_password=settings.nats_password,
            namespace=topology.namespace,
        )  # fmt: skip
        key, created = asyncio.run(asyncio.wait_for(keys.provision(admin, key_file, LOCAL_ACCOUNT), 10))
    except Exception as error:
        raise DevServerError(f"set-up step failed against {servers.nats_url}: {error!r}") from error
    roles = f"; database roles {pgroles.READER}, {pgroles.WRITER}" if servers.database_roles else ""
    users = f"; NATS users {ADMIN}, {', '.join(SERVICES)}" if servers.nats_users else ""
    console.say(f"Set-up      streams, consumers and buckets in place{users}{roles}")
    console.say(f"API key     {'created' if created else 'kept'} for account {LOCAL_ACCOUNT} in {_short(key_file)}")
    return key


def _stop_server(server: ServerProcess, console: Console, label: str) -> None:
    server.stop()
    console.say(f"{label} stopped")


def _announce(console: Console, label: str, server: ServerProcess, where: Path) -> None:
    console.say(
        f"{label}  {server.url} (data {_short(where)}, log {_short(server.log_path)}, "
        f"up in {server.startup_seconds * 1000:.0f} ms)"
    )


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def launch(
    services: Sequence[ServiceSpec] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
    out: TextIO | None = None,
    stop_timeout: float = STOP_TIMEOUT,
) -> int:
    """Start the servers (unless given by URL) and `services`; return the exit status.

    `environ` defaults to `os.environ` and is passed on to the services with the server
    URLs added; `run_dir` (default `.run` in the repository, or `RUN_DIR`) holds the data.
    """
    environ = dict(os.environ if environ is None else environ)
    services = default_services() if services is None else list(services)
    if run_dir is None:
        run_dir = Path(environ.get("RUN_DIR") or REPO_ROOT / ".run")
    out = sys.stdout if out is None else out
    colour = out.isatty() and "NO_COLOR" not in environ
    console = Console(out, [s.name for s in services], colour=colour)
    # Outside the event loop, SIGTERM unwinds like Ctrl-C so the servers stop cleanly.
    previous = _on_sigterm(_raise_interrupt)
    try:
        with contextlib.ExitStack() as stack:
            try:
                servers = _start_servers(stack, environ, run_dir, console)
            except DevServerError as error:
                console.say(str(error), alarm=True)
                return 1
            host = environ.get("GATEWAY_HOST") or "127.0.0.1"
            port = environ.get("GATEWAY_PORT") or "8000"
            gateway_url = f"http://{host}:{port}"
            rule = "-" * 60
            console.say(rule)
            console.say(f"Gateway     {gateway_url}    Ctrl-C stops everything")
            console.say(f"API key     {servers.api_key}")
            console.say(f"Console     {gateway_url}/    (sign in with the API key)")
            console.say("CLI         .venv/bin/engine submit market SOL USDC 1.5, then engine watch <orderId>")
            console.say(f"Try         curl -H \"Authorization: Bearer $(cat {_short(run_dir / local.API_KEY_FILE)})\" {gateway_url}/api/orders")
            console.say(rule)
            # One terminal for four services: plain text reads better than JSON there.
            # wsUrl from this URL, never from a request's Host header.
            public = {"GATEWAY_PUBLIC_URL": environ.get("GATEWAY_PUBLIC_URL") or gateway_url}
            env = {"LOG_FORMAT": "text", **environ, **public, "NATS_URL": servers.nats_url, "PYTHONUNBUFFERED": "1"}
            env["DATABASE_URL"] = servers.database_url
            if servers.database_roles:  # only the gateway and the projector get a database
                del env["DATABASE_URL"]
            services = [msgspec.structs.replace(s, env={**servers.service_env(s.name), **s.env}) for s in services]
            local.publish(run_dir, local.StackFile(
                pid=os.getpid(), nats_url=servers.nats_url, database_url=servers.database_url,
                gateway_url=gateway_url, namespace=environ.get("ENGINE_NAMESPACE", ""),
                nats_users=servers.nats_users, database_roles=servers.database_roles,
            ))  # fmt: skip
            stack.callback(local.withdraw, run_dir, os.getpid())
            status = asyncio.run(_run(services, env, console, stop_timeout))
            _on_sigterm(_raise_interrupt)  # asyncio.run reset it
            return status
    except KeyboardInterrupt:
        console.say("interrupted; stopped")
        return 0
    finally:
        _on_sigterm(previous)


def _on_sigterm(handler: Any) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None  # only the main thread may set handlers; leave them alone
    return signal.signal(signal.SIGTERM, handler) if handler is not None else None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _run(
    services: Sequence[ServiceSpec], env: Mapping[str, str], console: Console, timeout: float
) -> int:
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            force.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    return await supervise(
        services, env=env, console=console, stop=stop, force=force, stop_timeout=timeout
    )


def main() -> None:
    sys.exit(launch())


if __name__ == "__main__":
    main()
