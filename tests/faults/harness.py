"""Faults on real processes: kill -9 a service replica, a nats-server, stop PostgreSQL.

A killed process is restarted as a supervisor (Kubernetes, systemd) would: the same
command, environment and ports; a nats-server on the same port and store directory, with
the configuration it wrote there; PostgreSQL on the same data directory and port.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import nats as _nats
import nats.js.api as api

from shared.natsauth import ADMIN
from shared.topology import Topology
from tests.e2e.conftest import Stack
from tests.helpers import eventually, free_port
from tools.devservers import ServerProcess, start_nats, start_postgres


def kill9(stack: Stack, name: str) -> float:
    """SIGKILL service process `name` and reap it; returns when it died (wall clock)."""
    process = stack.processes.pop(name)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return time.time()


async def restart(stack: Stack, name: str, timeout: float = 30) -> None:
    """Start `name` again and wait until its ops port answers /readyz."""
    stack.start(name)
    await ready(stack, name, timeout=timeout)


async def ready(stack: Stack, name: str, timeout: float = 30) -> None:
    url = f"http://127.0.0.1:{stack.ops_ports[name]}/readyz"

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(answers, timeout=timeout, interval=0.05, message=f"{name} ready after restart")


def kill9_broker(stack: Stack, index: int = 0) -> float:
    """SIGKILL nats-server `index` of the stack; returns when it died."""
    server = stack.brokers[index]
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    server.stop()  # releases its store directory's lock
    return time.time()


def restart_broker(stack: Stack, index: int = 0) -> float:
    """Start nats-server `index` again on its port and store directory; returns when it answers."""
    old = stack.brokers[index]
    store = old.log_path.parent
    config = (store / "nats.conf").read_text() if (store / "nats.conf").exists() else ""
    server = start_nats(store_dir=store, port=old.port, config=config)
    stack.brokers[index] = server
    if index == 0:
        stack.nats = server
    return time.time()


def start_cluster(base: Path, authorization: str, nodes: int = 3) -> list[ServerProcess]:
    """`nodes` nats-servers with JetStream clustered on the loopback, each with `authorization`."""
    routes = [free_port() for _ in range(nodes)]
    servers: list[ServerProcess] = []
    try:
        for i in range(nodes):
            others = ", ".join(f"nats-route://127.0.0.1:{port}" for j, port in enumerate(routes) if j != i)
            cluster = (
                f"server_name: n{i + 1}\n"
                f"cluster {{\n  name: faults\n  listen: 127.0.0.1:{routes[i]}\n  routes: [{others}]\n}}\n"
            )
            servers.append(start_nats(store_dir=base / f"n{i + 1}", config=f"{authorization}\n{cluster}"))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


async def jetstream_ready(urls: list[str], password: str, replicas: int, timeout: float = 60) -> None:
    """Until the cluster places a stream on `replicas` nodes (every peer known to the meta leader)."""
    async def places() -> bool:
        nc = await _nats.connect(urls, user=ADMIN, password=password, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            probe = api.StreamConfig(name="FAULTS_PROBE", subjects=["faults.probe"], num_replicas=replicas)
            await js.add_stream(probe)
            await js.delete_stream(probe.name)
            return True
        except Exception:  # noqa: BLE001 - not yet: no meta leader, peers unknown, no responders
            return False
        finally:
            await nc.close()

    await eventually(places, timeout=timeout, interval=0.5, message=f"JetStream cluster placing R{replicas} streams")


class Postgres:
    """A PostgreSQL of one test's own, so that it can be stopped without harming the others."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: ServerProcess | None = start_postgres(data_dir=data_dir, durable=False)
        self.port = self.server.port
        self.url = self.server.url

    def stop(self) -> float:
        """A fast shutdown (what `pg_ctl stop -m fast` does); returns when it is down."""
        assert self.server is not None
        self.server.stop()
        self.server = None
        return time.time()

    def start(self) -> float:
        """Start again on the same data directory and port; returns when it accepts connections."""
        self.server = start_postgres(data_dir=self.data_dir, port=self.port, durable=False)
        return time.time()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class ChainWatch:
    """Sees each transaction the moment the chain stores it (the chain's bucket, as written)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._records: asyncio.Queue[float] = asyncio.Queue()

    async def __aenter__(self) -> ChainWatch:
        self._nc = await self._stack.admin_nats()
        bucket = Topology(namespace=self._stack.env["ENGINE_NAMESPACE"]).chain_bucket

        async def on_record(msg) -> None:
            self._records.put_nowait(time.time())

        await self._nc.subscribe(f"$KV.{bucket}.tx.>", cb=on_record)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._nc.close()

    async def next_record(self, timeout: float = 10) -> float:
        """Until the chain stores a transaction after this call; when it did."""
        while not self._records.empty():
            self._records.get_nowait()
        return await asyncio.wait_for(self._records.get(), timeout)
