"""PostgreSQL from the system's binaries, else those shipped in the `pgserver` wheel.

The postmaster runs as our child (not detached by `pg_ctl`), so it cannot outlive us.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from tools import pgroles
from tools.devservers.ports import free_port
from tools.devservers.process import (
    DevServerError,
    ServerProcess,
    _log_tail,
    _spawn,
    _wait_until,
)

PG_USER = "postgres"
PG_DATABASE = "engine"
# A Unix socket path may hold at most 107 bytes; longer data dirs get TCP only.
_MAX_SOCKET_DIR_LEN = 90


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

    Trust authentication for user `postgres` on `host` only, passwords for the engine's
    roles (`tools.pgroles`); `database` is created if missing. `durable=False` turns fsync off, for throwaway test clusters. As root, the
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
    _require_role_passwords(data_dir)
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


_HBA_MARKER = "# The engine's roles log in with their passwords (tools.pgroles); first match wins."


def _require_role_passwords(data_dir: Path) -> None:
    """Put password rules for the reader and writer roles ahead of initdb's `trust` lines."""
    hba = data_dir / "pg_hba.conf"
    text = hba.read_text()
    if _HBA_MARKER in text:
        return
    roles = f"{pgroles.READER},{pgroles.WRITER}"
    rules = [
        _HBA_MARKER,
        f"local all {roles} scram-sha-256",
        f"host all {roles} 127.0.0.1/32 scram-sha-256",
        f"host all {roles} ::1/128 scram-sha-256",
    ]
    hba.write_text("\n".join(rules) + "\n" + text)


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
