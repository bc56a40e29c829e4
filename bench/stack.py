"""A throw-away stack for a benchmark run: fresh NATS, PostgreSQL and the four services."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx

from tools.devservers import free_port, start_nats, start_postgres

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "router", "executor", "projector")


@contextlib.contextmanager
def spawn(profile: str, extra_env: dict[str, str]) -> Iterator[str]:
    """Start everything in a temporary directory; yield the gateway URL; stop everything."""
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        root = Path(tmp)
        with start_nats(store_dir=root / "nats") as nats, start_postgres(data_dir=root / "pg", durable=False) as pg:
            port = free_port()
            env = dict(os.environ, NATS_URL=nats.url, DATABASE_URL=pg.url, SIM_PROFILE=profile, GATEWAY_PORT=str(port),
                       LOG_LEVEL="warning", PYTHONPATH=str(ROOT))
            env.update(extra_env)
            procs = []
            for offset, name in enumerate(SERVICES):
                service_env = dict(env, OPS_PORT=str(free_port()))
                log = open(root / f"{name}.log", "wb")
                procs.append(subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=service_env,
                                              stdout=log, stderr=subprocess.STDOUT))
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url)
                yield url
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
