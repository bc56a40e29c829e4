"""The four services as real processes against the test session's NATS and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from shared import accounts
from shared.accounts import KeyStore
from shared.ids import order_id_for_client_key
from shared.topology import Topology

from tests.helpers import eventually, free_port

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
    "EXECUTOR_POLL_MS": "20",
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
    database_url: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)  # health and /metrics, gateway's included
    api_key: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, *, key: str | None = None, **options) -> httpx.AsyncClient:
        """An HTTP client of the gateway sending `key` (default: the stack's own key)."""
        headers = {"Authorization": f"Bearer {key if key is not None else self.api_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, **options)

    async def keyed_order_id(self, client_order_id: str, account: str = "e2e") -> str:
        """The order id the gateway gives `account`'s `clientOrderId` (read with the server's secret)."""
        nc = await nats.connect(self.env["NATS_URL"])
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=self.env["ENGINE_NAMESPACE"]))
            return order_id_for_client_key(await store.order_id_secret(), account, client_order_id)
        finally:
            await nc.close()

    async def new_key(self, account: str, **limits: int) -> str:
        """A fresh API key of `account` (generous limits unless given)."""
        limits = {"submit_rate": 100_000, "read_rate": 100_000, "max_streams": 10_000} | limits
        key, record = accounts.new_key(account, int(time.time() * 1000), **limits)
        await self.add_key(record)
        return key

    async def add_key(self, record: accounts.ApiKey) -> None:
        nc = await nats.connect(self.env["NATS_URL"])
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=self.env["ENGINE_NAMESPACE"]))
            await store.add(record)
        finally:
            await nc.close()

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        env = dict(self.env, OPS_PORT=str(self.ops_ports[name]))
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

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


def stack_env(nats_url: str, database_url: str, namespace: str, schema: str, port: int, extra: Mapping[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "CHAIN_", "EXECUTOR_"))}
    env.update(E2E_ENV)
    env.update(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        DATABASE_SCHEMA=schema,
        ENGINE_NAMESPACE=namespace,
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


async def start_stack(nats_url: str, database_url: str, tmp: Path, extra: Mapping[str, str] = {}) -> Stack:
    namespace = "e" + uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(database_url)
    await conn.execute(f'create schema "{namespace}"')
    await conn.close()
    port = free_port()
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}",
        env=stack_env(nats_url, database_url, namespace, namespace, port, extra),
        schema=namespace,
        database_url=database_url,
        logs=tmp,
        ops_ports={name: free_port() for name in SERVICES},
    )
    for name in SERVICES:
        stack.start(name)

    async def ready() -> bool:
        async with httpx.AsyncClient(timeout=1) as client:
            urls = [f"{stack.base_url}/readyz"] + [f"http://127.0.0.1:{p}/readyz" for p in stack.ops_ports.values()]
            for url in urls:
                try:
                    if (await client.get(url)).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True

    try:
        await eventually(ready, timeout=30, interval=0.1, message="all four services ready")
    except AssertionError:
        await stop_stack(stack, check=False)
        raise AssertionError("stack did not become ready\n" + stack.tail())
    stack.api_key = await stack.new_key("e2e")
    return stack


async def stop_stack(stack: Stack, *, check: bool = True) -> None:
    codes = {name: stack.stop(name) for name in list(stack.processes)}
    conn = await asyncpg.connect(stack.database_url)
    await conn.execute(f'drop schema if exists "{stack.schema}" cascade')
    await conn.close()
    if check:
        assert all(code == 0 for code in codes.values()), f"unclean exits {codes}\n{stack.tail()}"


@pytest.fixture(scope="module")
async def stack(nats_url, database_url, tmp_path_factory) -> AsyncIterator[Stack]:
    running = await start_stack(nats_url, database_url, tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        await stop_stack(running)


@pytest.fixture(scope="module")
def api_headers(stack: Stack) -> dict[str, str]:
    """Headers that authenticate an e2e client to the gateway with the stack's key."""
    return stack.headers
