"""The development servers and the `make run` launcher, against real processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import nats
import pytest

from tests.helpers import eventually, free_port, process_gone
from tools.devservers import DevServerError, start_nats, start_postgres
from tools import local, pgroles
from tools.credentials import Credentials, role_url
from tools.supervisor import Console, ServiceSpec, supervise

# Stand-in services: report themselves, then run until stopped.
SLEEPER = textwrap.dedent("""
    import os, time
    print("pid", os.getpid(), flush=True)
    print("urls", os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL"), flush=True)
    print("user", os.environ.get("NATS_USER"), flush=True)
    time.sleep(120)
""")
STUBBORN = textwrap.dedent("""
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("pid", os.getpid(), flush=True)
    time.sleep(120)
""")
# Crashes once the steady service has said its pid (it then creates the file STEADY_SAID_PID).
STEADY = textwrap.dedent("""
    import os, time
    print("pid", os.getpid(), flush=True)
    open(os.environ["STEADY_SAID_PID"], "x").close()
    time.sleep(120)
""")
CRASHY = textwrap.dedent("""
    import os, time
    while not os.path.exists(os.environ["STEADY_SAID_PID"]):
        time.sleep(0.01)
    print("bye")
    raise SystemExit(3)
""")
LAUNCHER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tools.run import ServiceSpec, launch
    sleeper, stubborn, run_dir = sys.argv[1:4]
    services = [
        ServiceSpec(name="gateway", argv=(sys.executable, "-c", sleeper)),
        ServiceSpec(name="executor", argv=(sys.executable, "-c", stubborn)),
    ]
    sys.exit(launch(services, run_dir=Path(run_dir), stop_timeout=0.5))
""")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory that an unprivileged PostgreSQL user can reach when we are root."""
    path = Path(tempfile.mkdtemp(prefix="engine-devservers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _children_of(pid: int) -> list[int]:
    children = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat_file.parent.name))
    return children


class _Output:
    """Collects a child process's stdout lines as they arrive."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._task = asyncio.create_task(self._read(process.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode().rstrip("\n"))

    def matches(self, pattern: str) -> list[re.Match[str]]:
        return [m for line in self.lines if (m := re.search(pattern, line))]

    async def finish(self) -> str:
        await self._task
        return "\n".join(self.lines)


async def test_nats_server_stores_and_acknowledges_jetstream_messages(
    nats_url: str, namespace: str
) -> None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        await js.add_stream(name=namespace, subjects=[f"{namespace}.>"])
        ack = await js.publish(f"{namespace}.hello", b"world")
        stored = await js.get_msg(namespace, ack.seq)
    finally:
        await client.close()
    assert (ack.stream, ack.seq) == (namespace, 1)
    assert stored.data == b"world"


async def test_postgres_server_answers_queries(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 6 * 7") == 42
    finally:
        await conn.close()


async def test_pg_schema_fixture_gives_each_test_its_own_schema(
    database_url: str, pg_schema: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE TABLE "{pg_schema}".notes (body text)')
        await conn.execute(f"INSERT INTO \"{pg_schema}\".notes VALUES ('kept')")
        assert await conn.fetchval(f'SELECT body FROM "{pg_schema}".notes') == "kept"
    finally:
        await conn.close()


async def test_namespace_is_a_short_lowercase_token_unique_to_the_test(namespace: str) -> None:
    assert re.fullmatch(r"t[0-9a-f]{8}", namespace)


async def test_starting_nats_on_a_port_in_use_fails_with_the_server_log(scratch: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DevServerError, match="address already in use"):
            start_nats(store_dir=scratch, port=port)


async def test_a_nats_store_directory_serves_one_server_at_a_time(scratch: Path) -> None:
    with start_nats(store_dir=scratch):
        with pytest.raises(DevServerError, match="in use by another server"):
            start_nats(store_dir=scratch)
    with start_nats(store_dir=scratch) as after:
        assert after.running()


async def test_stopping_nats_ends_its_process_and_frees_its_port(scratch: Path) -> None:
    server = start_nats(store_dir=scratch)
    assert server.url == f"nats://127.0.0.1:{server.port}"
    assert _accepts_connections(server.port)
    server.stop()
    assert process_gone(server.pid)
    assert not _accepts_connections(server.port)
    assert "Server is ready" in (scratch / "nats.log").read_text()


async def test_stopping_postgres_ends_the_server_and_all_its_backends(scratch: Path) -> None:
    with start_postgres(data_dir=scratch / "pg", durable=False) as server:
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/engine"
        backends = _children_of(server.pid)
        assert backends, "a running postmaster has background processes"
    assert process_gone(server.pid)
    assert [pid for pid in backends if not process_gone(pid)] == []
    assert not _accepts_connections(server.port)


async def test_postgres_keeps_its_data_across_restarts_and_runs_once_per_cluster(
    scratch: Path,
) -> None:
    with start_postgres(data_dir=scratch / "pg", durable=False) as first:
        conn = await asyncpg.connect(first.url)
        await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        await conn.close()
        with pytest.raises(DevServerError, match="lock file .* already exists"):
            start_postgres(data_dir=scratch / "pg", durable=False)
    with start_postgres(data_dir=scratch / "pg", durable=False) as second:
        conn = await asyncpg.connect(second.url)
        assert await conn.fetchval("SELECT n FROM kept") == 7
        await conn.close()


async def test_starting_postgres_on_a_port_in_use_fails_with_the_server_log(
    scratch: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DevServerError, match="(?s)exited with code.*could not bind"):
            start_postgres(data_dir=scratch / "pg", port=port, durable=False)


async def test_servers_stop_when_the_process_that_started_them_is_killed(scratch: Path) -> None:
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from tools.devservers import start_nats, start_postgres
        base = Path(sys.argv[1])
        nats = start_nats(store_dir=base / "nats")
        pg = start_postgres(data_dir=base / "pg", durable=False)
        print(nats.pid, pg.pid, flush=True)
        sys.stdin.readline()
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup of any kind
    """)
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(scratch),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert owner.stdin is not None and owner.stdout is not None
    line = await asyncio.wait_for(owner.stdout.readline(), 30)
    nats_pid, pg_pid = map(int, line.split())
    assert not process_gone(nats_pid) and not process_gone(pg_pid)
    servers = [nats_pid, pg_pid, *_children_of(pg_pid)]
    owner.stdin.write(b"\n")
    try:
        assert await asyncio.wait_for(owner.wait(), 10) == -signal.SIGKILL
        await eventually(
            lambda: [pid for pid in servers if not process_gone(pid)] == [],
            message="servers outlived the process that started them",
        )
    finally:
        for pid in servers:  # a failed run must not leave servers behind either
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


async def test_console_pads_names_to_one_width_and_colours_only_when_asked() -> None:
    plain = Console(io.StringIO(), ["gateway", "projector"], colour=False)
    coloured = Console(io.StringIO(), ["gateway", "projector"], colour=True)
    assert plain.prefix("gateway") == "gateway   | "
    assert plain.prefix("projector") == "projector | "
    assert coloured.prefix("gateway") == "\x1b[36mgateway   |\x1b[0m "


async def test_launcher_prefixes_every_line_of_each_service_and_passes_the_urls() -> None:
    out = io.StringIO()
    services = [
        ServiceSpec(name="alpha", argv=(sys.executable, "-c", SLEEPER)),
        ServiceSpec(name="projector", argv=(sys.executable, "-c", SLEEPER)),
    ]
    console = Console(out, [s.name for s in services], colour=False)
    env = {**os.environ, "NATS_URL": "nats://example:1", "DATABASE_URL": "postgresql://x/y"}
    stop = asyncio.Event()
    running = asyncio.create_task(supervise(services, env=env, console=console, stop=stop))

    def pids() -> list[int]:
        found = re.findall(r"^(?:alpha    |projector) \| pid (\d+)$", out.getvalue(), re.M)
        return [int(pid) for pid in found] if len(found) == 2 else []

    children = await eventually(pids, message="both services report their pid")
    stop.set()
    assert await asyncio.wait_for(running, 15) == 0
    assert all(process_gone(pid) for pid in children)
    urls = "| urls nats://example:1 postgresql://x/y"
    assert out.getvalue().count(urls) == 2


async def test_launcher_passes_on_lines_longer_than_its_read_buffer() -> None:
    out = io.StringIO()
    chatty = "import time; print('x' * 3_000_000); print('end', flush=True); time.sleep(120)"
    services = [ServiceSpec(name="chatty", argv=(sys.executable, "-c", chatty))]
    console = Console(out, ["chatty"], colour=False)
    stop = asyncio.Event()
    running = asyncio.create_task(supervise(services, env=os.environ, console=console, stop=stop))
    await eventually(lambda: "chatty | end\n" in out.getvalue(), message="the last line arrives")
    stop.set()
    assert await asyncio.wait_for(running, 15) == 0
    assert out.getvalue().count("x") == 3_000_000


async def test_launcher_stops_the_stack_when_a_service_exits_unexpectedly(scratch: Path) -> None:
    out = io.StringIO()
    services = [
        ServiceSpec(name="steady", argv=(sys.executable, "-c", STEADY)),
        ServiceSpec(name="crashy", argv=(sys.executable, "-c", CRASHY)),
    ]
    console = Console(out, [s.name for s in services], colour=False)
    env = {**os.environ, "STEADY_SAID_PID": str(scratch / "steady-said-pid")}
    status = await asyncio.wait_for(supervise(services, env=env, console=console, stop=asyncio.Event()), 15)
    text = out.getvalue()
    assert status == 1
    assert "crashy | bye" in text
    assert "crashy exited unexpectedly with code 3; stopping the stack" in text
    (steady,) = map(int, re.findall(r"^steady \| pid (\d+)$", text, re.M))
    assert process_gone(steady)


async def test_launcher_stops_every_service_on_sigterm_and_exits_cleanly(
    scratch: Path, nats_url: str, database_url: str
) -> None:
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url}
    run_dir = scratch / "run"
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCHER, SLEEPER, STUBBORN, str(run_dir),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = _Output(launcher)
    await eventually(
        lambda: len(output.matches(r"^(gateway|executor) +\| pid \d+$")) == 2,
        message="both services started",
    )
    children = [int(m.group(1)) for m in output.matches(r"\| pid (\d+)$")]
    launcher.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(launcher.wait(), 15) == 0
    text = await output.finish()
    assert all(process_gone(pid) for pid in children)
    assert f"gateway  | urls {nats_url} {database_url}" in text
    assert "executor did not stop in time; killing it" in text
    assert "http://127.0.0.1:8000" in text
    assert not (run_dir / "nats").exists() and not (run_dir / "pg").exists(), "servers given by URL are used"
    assert not (run_dir / "stack.json").exists(), "the stack is no longer announced once stopped"


async def test_launcher_runs_its_own_servers_when_no_urls_are_given(scratch: Path) -> None:
    nats_port, pg_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"RUN_NATS_PORT": str(nats_port), "RUN_PG_PORT": str(pg_port), "GATEWAY_PORT": "8123"}
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCHER, SLEEPER, STUBBORN, str(scratch / "run"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = _Output(launcher)
    urls = await eventually(
        lambda: output.matches(r"^gateway +\| urls (\S+) (\S+)$"),
        timeout=30,
        message="the gateway stand-in reports the server URLs",
    )
    nats_url, database_url = urls[0].groups()
    assert nats_url == f"nats://127.0.0.1:{nats_port}"
    creds_file = scratch / "run" / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = msgspec.json.decode(creds_file.read_bytes(), type=Credentials)
    reader = role_url(f"postgresql://postgres@127.0.0.1:{pg_port}/engine", pgroles.READER, creds.reader_password)
    assert database_url == reader, "the gateway reads as the read-only role"
    await eventually(lambda: output.matches(r"^gateway +\| user gateway$"), message="the gateway's own NATS user")
    with pytest.raises(Exception):
        await nats.connect(nats_url, allow_reconnect=False, max_reconnect_attempts=0)  # no user: refused
    # A tool finds the running stack under .run/ and connects as admin, set up already.
    found = local.connection("admin", {}, scratch / "run")
    client = await local.connect_nats(found, "test")
    assert (await client.jetstream().stream_info("ORDERS")).config.name == "ORDERS"
    await client.close()
    conn = await asyncpg.connect(database_url)
    assert await conn.fetchval("SELECT current_database()") == "engine"
    await conn.close()

    launcher.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(launcher.wait(), 30) == 0
    text = await output.finish()
    assert "http://127.0.0.1:8123" in text
    key_file = scratch / "run" / "api-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f"API key     {key_file.read_text().strip()}" in text, "the banner shows the local key"
    assert text.index("PostgreSQL stopped") < text.index("NATS stopped")
    assert not _accepts_connections(nats_port)
    assert not _accepts_connections(pg_port)
    with pytest.raises(local.NoLocalStack, match="make run"):
        local.connection("admin", {}, scratch / "run")


async def test_nats_monitoring_listens_on_the_loopback_only(scratch: Path) -> None:
    port = free_port()
    with start_nats(store_dir=scratch / "nats", monitor_port=port) as server:
        ports = json.loads(next((scratch / "nats").glob(f"*_{server.pid}.ports")).read_text())
        assert ports["monitoring"] == [f"http://127.0.0.1:{port}"]  # bound to all, it would list every address
        assert _accepts_connections(port)
