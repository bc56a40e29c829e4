"""The conditions printed with every figure: machine, software versions, code, load."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model(cpuinfo: str) -> str:
    """The first `model name` of a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _versions() -> str:
    found = []
    for package in ("nats-py", "litestar", "asyncpg", "aiohttp"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} ?")
    return ", ".join(found)


def _servers() -> str:
    from tools.devservers import nats_server_binary, postgres_bindir

    try:
        nats = _run([str(nats_server_binary()), "--version"]) or "?"
    except Exception:  # not installed: say so rather than stop the run
        nats = "?"
    try:
        pg = _run([str(postgres_bindir() / "postgres"), "-V"]) or "?"
    except Exception:
        pg = "?"
    return f"{nats}; {pg}"


def _commit() -> str:
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"]) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return commit + (" with uncommitted changes" if dirty else "")


def describe(target: str, load: str) -> list[str]:
    """Lines for the report: `target` (which stack, profile) and `load` (rate, orders, watchers...)."""
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = platform.processor() or "unknown"
    return [
        "Conditions",
        f"  target      {target}",
        f"  load        {load}; every request with an API key (account bench, limits raised)",
        f"  machine     {os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"
        " (client, services, NATS and PostgreSQL share it)",
        f"  software    Python {platform.python_version()}; {_servers()}; {_versions()}",
        f"  code        commit {_commit()}",
    ]
