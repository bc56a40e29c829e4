"""The four services as real processes, each with its own NATS user and database role.

Each stack runs its own nats-server (from the wheel, started in milliseconds) configured
with the permission table of its namespace (`shared.natsauth`), and the admin set-up step
(`tools.setup`) creates its streams and consumers; the services only bind to them. The
gateway reads the session's PostgreSQL as the read-only role, the projector writes as
the writer role, and router and executor get no database URL at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats as _nats
import pytest

from shared import accounts
from shared.accounts import KeyStore
from shared.ids import order_id_for_client_key
from shared.natsauth import ADMIN, authorization
from shared.runtime import nats_servers
from shared.topology import Topology

from tests.helpers import eventually, free_port
from tools import credentials, keys, pgroles
from tools.devservers import ServerProcess, start_nats
from tools.setup import provision_nats

SERVICES = ("gateway", "router", "executor", "projector")
ROOT = Path(__file__).resolve().parents[2]

# Latencies short enough for a quick suite but long enough that a client can connect
# mid-flight; transient failures on, so retries (including dropped transactions, found
# when their blockhash expires) happen in every run.
E2E_ENV = {
    "SIM_PROFILE": "zero",
    "QUOTE_DELAY_MS_MIN": "20",
    "QUOTE_DELAY_MS_MAX": "80",
    "CONFIRM_DELAY_MS_MIN": "50",
    "CONFIRM_DELAY_MS_MAX": "200",
    "CHAIN_FAILURE_RATE": "0.2",
    "SLOT_MS": "50",
    "BLOCKHASH_TTL_SLOTS": "12",
    "EXECUTOR_BACKOFF_BASE_MS": "20",
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "warning",
    # Long rate windows so a test's burst fits in one; revocations and unknown streams quick.
    "RATE_LIMIT_WINDOW_S": "10",
    "KEY_CACHE_TTL_S": "0.5",
    "UNKNOWN_ORDER_WAIT_S": "2",
}


@dataclass
class Stack:
    base_url: str
    ws_url: str
    env: dict[str, str]
    schema: str
    database_url: str  # the admin URL: tests look at the read model through it
    logs: Path
    nats: ServerProcess
    creds: credentials.Credentials
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)  # health and /metrics, gateway's included
    api_key: str = ""
    #: Environment of one process only (a second gateway's port), by process name.
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Every nats-server of the stack when it runs a cluster (`nats` is the first).
    brokers: list[ServerProcess] = field(default_factory=list)

    @property
    def gateway_urls(self) -> list[str]:
        """The base URL of every gateway replica, the first one's first."""
        ports = [self.overrides.get(name, {}).get("GATEWAY_PORT") for name in self.names("gateway")]
        return [self.base_url if port is None else f"http://127.0.0.1:{port}" for port in ports]

    def names(self, service: str) -> list[str]:
        """The process names of `service`'s replicas: `router`, `router-2`, ..."""
        return sorted((n for n in self.ops_ports if service_of(n) == service), key=lambda n: (len(n), n))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, *, key: str | None = None, **options) -> httpx.AsyncClient:
        """An HTTP client of the gateway sending `key` (default: the stack's own key)."""
        headers = {"Authorization": f"Bearer {key if key is not None else self.api_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, **options)

    async def keyed_order_id(self, client_order_id: str, account: str = "e2e") -> str:
        """The order id the gateway gives `account`'s `clientOrderId` (read with the server's secret)."""
        nc = await self.admin_nats()
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=self.env["ENGINE_NAMESPACE"]))
            return order_id_for_client_key(await store.order_id_secret(), account, client_order_id)
        finally:
            await nc.close()

    async def new_key(self, account: str, **limits: int) -> str:
        """A fresh API key of `account` (generous limits unless given)."""
        limits = {"submit_rate": 100_000, "read_rate": 100_000, "max_streams": 10_000} | limits
        nc = await self.admin_nats()
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=self.env["ENGINE_NAMESPACE"]))
            key, _ = await keys.create_key(store, account, **limits)
            return key
        finally:
            await nc.close()

    async def add_key(self, record: accounts.ApiKey) -> None:
        """Store a key record made by the test (for a key whose text it must know beforehand)."""
        nc = await self.admin_nats()
        try:
            await (await KeyStore.open(nc.jetstream(), Topology(namespace=self.env["ENGINE_NAMESPACE"]))).add(record)
        finally:
            await nc.close()

    async def admin_nats(self):
        """A connection to the stack's NATS as the admin user."""
        return await _nats.connect(nats_servers(self.env["NATS_URL"]), user=ADMIN, password=self.creds.nats[ADMIN])

    @property
    def admin_env(self) -> dict[str, str]:
        """NATS_USER/NATS_PASSWORD of the admin user, for tools and tests."""
        return {"NATS_USER": ADMIN, "NATS_PASSWORD": self.creds.nats[ADMIN]}

    def service_env(self, name: str) -> dict[str, str]:
        """The service's own NATS user and, for gateway and projector, its database role."""
        return credentials.service_env(self.creds, name, admin_database_url=self.database_url)

    def start(self, name: str) -> None:
        """Start process `name`: a service (`router`) or another replica of one (`router-2`)."""
        service = service_of(name)
        log = open(self.logs / f"{name}.log", "ab")
        env = {
            **self.env,
            **self.service_env(service),
            "OPS_PORT": str(self.ops_ports[name]),
            **self.overrides.get(name, {}),
        }
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, *names: str, timeout: float = 30) -> None:
        """Until the gateway and the named services answer /readyz with 200."""
        urls = [f"{self.base_url}/readyz"] + [f"http://127.0.0.1:{self.ops_ports[n]}/readyz" for n in names]

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                for url in urls:
                    try:
                        if (await client.get(url)).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
            return True

        await eventually(ready, timeout=timeout, interval=0.1, message=f"{', '.join(names)} ready")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> int | str:
        """Signal and wait; a process that does not stop in time is killed and reported."""
        proc = self.processes.pop(name)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"killed: no exit within {timeout} s of signal {sig}"

    def tail(self) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-30:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)


def service_of(name: str) -> str:
    """The service a process name runs: `router-2` is a second router."""
    return name.split("-", 1)[0]


def stack_env(nats_url: str, namespace: str, schema: str, port: int, extra: Mapping[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "CHAIN_", "EXECUTOR_"))}
    env.update(E2E_ENV)
    env.pop("DATABASE_URL", None)  # only the gateway and the projector get one, each its own role
    env.update(
        NATS_URL=nats_url,
        DATABASE_SCHEMA=schema,
        ENGINE_NAMESPACE=namespace,
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


async def start_stack(
    database_url: str,
    creds: credentials.Credentials,
    tmp: Path,
    extra: Mapping[str, str] = {},
    *,
    replicas: int = 1,
    namespace: str | None = None,
    brokers: list[ServerProcess] | None = None,
    stream_replicas: int = 1,
) -> Stack:
    """Start a stack: `replicas` processes of each service, each with its own ops port.

    `brokers` are nats-servers started by the caller (a cluster) with the authorization of
    `namespace`; the services get all their URLs, comma-separated. Without them the stack
    starts its own nats-server.
    """
    namespace = namespace or "e" + uuid.uuid4().hex[:8]
    topology = Topology(namespace=namespace)
    conn = await asyncpg.connect(database_url)
    try:
        await pgroles.hand_over(conn, namespace)  # the writer's schema, readable by the reader
    finally:
        await conn.close()
    if brokers is None:
        brokers = [start_nats(store_dir=tmp / f"nats-{namespace}", config=authorization(topology, creds.nats))]
    nats_url = ",".join(broker.url for broker in brokers)
    admin = await _nats.connect(nats_servers(nats_url), user=ADMIN, password=creds.nats[ADMIN])
    try:
        await provision_nats(admin.jetstream(), topology, replicas=stream_replicas)  # the admin set-up step
    finally:
        await admin.close()
    port = free_port()
    names = [name if replica == 1 else f"{name}-{replica}" for name in SERVICES for replica in range(1, replicas + 1)]
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}",
        env=stack_env(nats_url, namespace, namespace, port, {"STREAM_REPLICAS": str(stream_replicas), **extra}),
        schema=namespace,
        database_url=database_url,
        logs=tmp,
        nats=brokers[0],
        creds=creds,
        ops_ports={name: free_port() for name in names},
        overrides={f"gateway-{r}": {"GATEWAY_PORT": str(free_port())} for r in range(2, replicas + 1)},
        brokers=list(brokers),
    )
    for name in names:
        stack.start(name)

    try:
        await stack.wait_ready(*names)
    except AssertionError:
        await stop_stack(stack, check=False)
        raise AssertionError("stack did not become ready\n" + stack.tail())
    stack.api_key = await stack.new_key("e2e")
    return stack


async def stop_stack(stack: Stack, *, check: bool = True) -> None:
    codes = {name: stack.stop(name) for name in list(stack.processes)}
    for broker in stack.brokers or [stack.nats]:
        broker.stop()
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute(f'drop schema if exists "{stack.schema}" cascade')
    await conn.close()
    if check:
        assert all(code == 0 for code in codes.values()), f"unclean exits {codes}\n{stack.tail()}"


def own_stack(extra: Mapping[str, str] | None = None, *, keys: tuple[accounts.ApiKey, ...] = ()):
    """A module-scoped stack fixture with `extra` settings (and key records added at start)."""

    @pytest.fixture(scope="module")
    async def fixture(database_url, stack_credentials, tmp_path_factory) -> AsyncIterator[Stack]:
        running = await start_stack(database_url, stack_credentials, tmp_path_factory.mktemp("stack"), extra or {})
        for record in keys:
            await running.add_key(record)
        try:
            yield running
        finally:
            await stop_stack(running)

    return fixture


stack = own_stack()


@pytest.fixture(scope="module")
def api_headers(stack: Stack) -> dict[str, str]:
    """Headers that authenticate an e2e client to the gateway with the stack's key."""
    return stack.headers
