"""A throw-away stack for a benchmark run: fresh NATS, PostgreSQL and the four services.

Set up as `make run` sets up its own: generated NATS users and database roles, the admin
set-up step before the services, each service with its own credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import httpx

from shared.natsauth import ADMIN, authorization
from shared.topology import Topology
from tools import credentials, local
from tools.keys import bench_key
from tools.devservers import free_port, start_nats, start_postgres
from tools.setup import SetupSettings
from tools.setup import run as run_setup

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "router", "executor", "projector")


@dataclass
class Spawned:
    url: str
    nats_url: str
    api_key: str = ""  # the account `bench`, limits raised
    ops_ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # nats, postgres (the postmaster) and each service


@contextlib.contextmanager
def spawn(profile: str, extra_env: dict[str, str], *, before: Callable[[str], None] | None = None) -> Iterator[Spawned]:
    """Start everything in a temporary directory and stop it all afterwards.

    `before(nats_url)` runs once NATS is up and before the set-up step and any service
    (to load data); the URL carries the admin user's credentials.
    """
    creds = credentials.generate()
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        root = Path(tmp)
        config = authorization(Topology(), creds.nats)
        with start_nats(store_dir=root / "nats", config=config) as nats, \
                start_postgres(data_dir=root / "pg", durable=False) as pg:
            admin_url = nats.url.replace("nats://", f"nats://{ADMIN}:{creds.nats[ADMIN]}@", 1)
            if before is not None:
                before(admin_url)
            asyncio.run(run_setup(SetupSettings(
                nats_url=nats.url, nats_user=ADMIN, nats_password=creds.nats[ADMIN], setup_database_url=pg.url,
                reader_database_password=creds.reader_password, writer_database_password=creds.writer_password,
            )))  # fmt: skip
            port = free_port()
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            env.update(NATS_URL=nats.url, SIM_PROFILE=profile, GATEWAY_PORT=str(port), LOG_LEVEL="warning",
                       PYTHONPATH=str(ROOT))
            env.update(extra_env)
            admin = local.Connection(nats_url=nats.url, nats_user=ADMIN, nats_password=creds.nats[ADMIN])
            stack = Spawned(url=f"http://127.0.0.1:{port}", nats_url=nats.url,
                            api_key=asyncio.run(bench_key(admin, root / "bench-key")),
                            pids={"nats": nats.pid, "postgres": pg.pid})
            procs = []
            for name in SERVICES:
                stack.ops_ports[name] = free_port()  # the gateway serves /metrics there too
                service_env = dict(env, OPS_PORT=str(stack.ops_ports[name]),
                                   **credentials.service_env(creds, name, admin_database_url=pg.url))
                log = open(root / f"{name}.log", "wb")
                procs.append(subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=service_env,
                                              stdout=log, stderr=subprocess.STDOUT))
                stack.pids[name] = procs[-1].pid
            try:
                _wait_ready(stack.url)
                yield stack
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"stack at {url} not ready within {timeout} s")
