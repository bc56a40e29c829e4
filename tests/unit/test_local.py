"""Finding a running `make run` from `.run/`, without servers: the files and the process check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from tools import credentials, local, pgroles

ROOT = Path(__file__).resolve().parents[2]


def announce(directory: Path, pid: int) -> credentials.Credentials:
    creds = credentials.load_or_create(directory / local.CREDENTIALS_FILE)
    local.publish(directory, local.StackFile(
        pid=pid, nats_url="nats://127.0.0.1:14222", database_url="postgresql://postgres@127.0.0.1:15432/engine",
        gateway_url="http://127.0.0.1:8000",
    ))  # fmt: skip
    return creds


def test_a_tool_gets_the_running_stacks_urls_and_the_credentials_of_its_role(tmp_path: Path) -> None:
    creds = announce(tmp_path, os.getpid())
    admin = local.connection("admin", {}, tmp_path)
    assert (admin.nats_url, admin.nats_user, admin.nats_password) == ("nats://127.0.0.1:14222", "admin", creds.nats["admin"])
    assert admin.gateway_url == "http://127.0.0.1:8000"
    projector = local.connection("projector", {}, tmp_path)
    assert projector.database_url == credentials.role_url(
        "postgresql://postgres@127.0.0.1:15432/engine", pgroles.WRITER, creds.writer_password
    )
    assert projector.nats_user == "projector"
    for name in (local.CREDENTIALS_FILE, local.STACK_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_the_environment_wins_over_the_running_stack(tmp_path: Path) -> None:
    announce(tmp_path, os.getpid())
    env = {"NATS_URL": "nats://elsewhere:4222", "NATS_USER": "ops", "NATS_PASSWORD": "pw"}
    found = local.connection("admin", env, tmp_path)
    assert (found.nats_url, found.nats_user, found.nats_password) == ("nats://elsewhere:4222", "ops", "pw")


def test_without_a_running_stack_the_error_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(local.NoLocalStack, match="start it with `make run`, or set NATS_URL"):
        local.connection("admin", {}, tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    announce(tmp_path, int(gone.stdout))
    with pytest.raises(local.NoLocalStack, match="has ended"):
        local.connection("admin", {}, tmp_path)


def test_the_announcement_is_withdrawn_only_by_its_owner(tmp_path: Path) -> None:
    announce(tmp_path, os.getpid())
    local.withdraw(tmp_path, os.getpid() + 1)
    assert (tmp_path / local.STACK_FILE).exists()
    local.withdraw(tmp_path, os.getpid())
    assert not (tmp_path / local.STACK_FILE).exists()


def test_credentials_are_made_once_and_kept(tmp_path: Path) -> None:
    first = credentials.load_or_create(tmp_path / "c.json")
    assert credentials.load_or_create(tmp_path / "c.json") == first
    assert set(first.nats) == {"admin", "gateway", "router", "executor", "projector"}
    assert msgspec.json.decode((tmp_path / "c.json").read_bytes(), type=credentials.Credentials) == first


@pytest.mark.parametrize("command", [
    ["-m", "tools.launch", "PUMP-USDC", "--price", "0.002"],
    ["-m", "tools.local", "exec", "projector", "--", sys.executable, "-m", "services.projector", "rebuild"],
    ["-m", "bench", "--orders", "1"],
])
def test_tools_without_a_running_stack_fail_at_once_with_a_clear_message(tmp_path: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "GATEWAY_URL")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env={**env, "RUN_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no running `make run` found" in result.stderr
    assert time.monotonic() - started < 10
