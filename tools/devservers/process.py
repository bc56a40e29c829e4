"""Child-process plumbing shared by the dev servers.

`ServerProcess` wraps a running server; `_spawn` starts one in its own session with a
parent-death signal, `_wait_until` polls it ready, `_lock_directory` keeps two servers off one
data directory. Servers still running at interpreter exit are stopped by an atexit hook.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

_POLL_INTERVAL = 0.005
T = TypeVar("T")


class DevServerError(RuntimeError):
    """A development server could not be found, started or stopped."""


class ServerProcess:
    """A running server child process: `.url`, `.stop()`, usable as a context manager."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        port: int,
        process: subprocess.Popen[bytes],
        log_path: Path,
        stop_signal: signal.Signals,
        startup_seconds: float,
        lock: IO[bytes] | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.port = port
        self.process = process
        self.log_path = log_path
        self.startup_seconds = startup_seconds
        self._lock_file = lock
        self._stop_signal = stop_signal
        self._lock = threading.Lock()
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down, wait up to `timeout` seconds, then kill it."""
        with self._lock:
            try:
                if self.running():
                    _signal(self.process, self._stop_signal)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout)
            finally:
                # Also reached when interrupted while waiting: never leave it running.
                if self.running():
                    _signal(self.process, signal.SIGKILL)
                    self.process.wait()
                _LIVE.discard(self)
                if self._lock_file is not None:
                    self._lock_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid={self.pid} {self.url}>"


_LIVE: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(timeout=5.0)



def _spawn(
    argv: Sequence[str],
    log_path: Path,
    death_signal: signal.Signals,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `argv` writing to `log_path`; return the process and where its log begins."""
    with log_path.open("ab") as log_file:  # the child keeps its own descriptor
        offset = log_file.tell()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                # Own session: a Ctrl-C meant for the launcher must not reach the servers
                # before the services using them have shut down.
                start_new_session=True,
                preexec_fn=die_with_parent(death_signal),
            )
        except OSError as error:
            raise DevServerError(f"cannot run {argv[0]}: {error}") from error
    return process, offset


def _lock_directory(directory: Path) -> IO[bytes]:
    """Hold an exclusive lock on `directory` until the returned file is closed."""
    lock = (directory / ".lock").open("a+b")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise DevServerError(
            f"{directory} is in use by another server started from this project"
        ) from None
    return lock


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child receive `sig` when this thread dies (Linux).

    The kernel ties the signal to the thread that forked, so it is only armed when called
    from the main thread; elsewhere this returns None and the atexit hook remains.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no dlopen in the child
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), int(sig))

    return arm


def _wait_until(
    ready: Callable[[], T | None | bool],
    process: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log_path: Path,
    log_offset: int,
) -> T:
    """Poll `ready` until truthy; kill `process` and raise if it dies, hangs or we are
    interrupted first."""
    deadline = time.monotonic() + timeout
    try:
        while not (value := ready()):
            code = process.poll()
            if code is not None:
                problem = f"exited with code {code} during start-up"
            elif time.monotonic() > deadline:
                problem = f"did not become ready within {timeout:g} s"
            else:
                time.sleep(_POLL_INTERVAL)
                continue
            raise DevServerError(
                f"{what} {problem}; log {log_path}:\n" + _log_tail(log_path, log_offset)
            )
    except BaseException:
        if process.poll() is None:
            _signal(process, signal.SIGKILL)
            process.wait()
        raise
    return value  # type: ignore[return-value]


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def _log_tail(log_path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"(log unreadable: {error})"
    tail = text.splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "    (log is empty)"
