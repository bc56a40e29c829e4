"""CPU time and memory of the stack's processes, read from /proc (Linux).

A process's CPU is its own utime+stime plus that of every descendant: live ones (each
PostgreSQL backend is a child of the postmaster) and reaped ones (cutime+cstime, which the
kernel adds to the parent when it waits for a child). Sampled at the start and end of a
measured window, the difference is what the process tree spent in it.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime


def parse_stat(text: str) -> Stat:
    """One /proc/<pid>/stat line; the command name in parentheses may hold spaces or ')'."""
    pid, _, rest = text.partition(" (")
    fields = rest[rest.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5) (state): ppid is 4, utime..cstime are 14..17.
    return Stat(pid=int(pid), ppid=int(fields[1]), ticks=sum(int(f) for f in fields[11:15]))


def read_stats() -> dict[int, Stat]:
    """Every process now running, by pid."""
    stats = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError):
                continue  # gone meanwhile
            stats[stat.pid] = stat
    return stats


def tree(stats: dict[int, Stat], root: int) -> set[int]:
    """`root` and its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named group of process trees (a tree's pid may repeat nowhere)."""
    stats = read_stats()
    return {name: sum(stats[p].ticks for root in roots for p in tree(stats, root)) / TICK
            for name, roots in pids.items()}


def own_cpu_seconds() -> float:
    """This process's CPU (the load generator), children included."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def parse_machine(proc_stat: str) -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine from /proc/stat's first line."""
    ticks = [int(t) for t in proc_stat.split("\n", 1)[0].split()[1:9]]  # user .. steal; guests are in user
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores)."""
    return parse_machine((PROC / "stat").read_text())[0] / TICK


def cmdline(pid: int) -> list[str]:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def role(argv: list[str]) -> str | None:
    """Which part of the stack a command line is: a service name, nats or postgres."""
    if not argv:
        return None
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1].startswith("services."):
            return argv[i + 1].removeprefix("services.").split(".")[0]
    exe = os.path.basename(argv[0])
    if exe == "nats-server":
        return "nats"
    if exe in ("postgres", "postmaster") or (exe == "setpriv" and any(a.endswith("/postgres") for a in argv)):
        return "postgres"
    return None


def discover(root: int | None) -> tuple[dict[str, list[int]], str]:
    """The stack's processes (topmost of each role), under `root` (a `make run`) or anywhere.

    Anywhere, a role found more than once (other stacks on the machine, tests) is left out
    rather than guessed; under a `make run` every replica of a role counts.
    """
    stats = read_stats()
    candidates = tree(stats, root) if root is not None else set(stats)
    found: dict[str, list[int]] = {}
    for pid in sorted(candidates):
        name = role(cmdline(pid))
        parent = stats[pid].ppid
        if name is not None and role(cmdline(parent)) != name:  # not a backend or a child of one
            found.setdefault(name, []).append(pid)
    if root is not None:
        return found, f"processes of the running `make run` (pid {root})"
    ambiguous = sorted(n for n, pids in found.items() if len(pids) > 1)
    for name in ambiguous:
        del found[name]
    note = "processes found by command line: " + (", ".join(f"{n} {p[0]}" for n, p in found.items()) or "none")
    return found, note + (f"; not measured, found more than once: {', '.join(ambiguous)}" if ambiguous else "")


def rss_kb(pid: int) -> int:
    """Resident memory (VmRSS) of one process, in KiB."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def open_files_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of a process."""
    for line in (PROC / str(pid) / "limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return 1 << 62 if soft == "unlimited" else int(soft)
    raise ValueError(f"no open-files limit for pid {pid}")


def raise_open_files(wanted: int) -> int:
    """Raise this process's (and so its future children's) soft open-files limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(target, soft)
