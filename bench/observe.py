"""What the stack spends during a measured window: CPU per process, and the projector's lag."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

import aiohttp

from bench import cpu
from bench.stats import summary

LAG = re.compile(r"^engine_projector_lag_seconds(?:\{[^}]*\})?\s+(\S+)$", re.M)


def parse_lag(metrics: str) -> float | None:
    """The projector's lag gauge from a Prometheus text page, if there."""
    match = LAG.search(metrics)
    return float(match.group(1)) if match else None


@dataclass
class Observation:
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process tree
    bench_cpu: float = 0.0
    machine_cpu: float = 0.0  # every process on the machine
    lag_s: list[float] = field(default_factory=list)


@dataclass
class Probe:
    """Where to look: the stack's processes by role, and the projector's ops URL."""

    pids: dict[str, list[int]]
    note: str  # how the pids were found, or why there are none
    projector_metrics: str | None = None  # http://host:port/metrics

    @contextlib.asynccontextmanager
    async def window(self, every: float = 0.5) -> AsyncIterator[Observation]:
        """Sample CPU on entry and exit, and the projector's lag every `every` seconds between."""
        seen = Observation()
        poller = asyncio.create_task(self._poll_lag(seen, every)) if self.projector_metrics else None
        began, bench, before = time.monotonic(), cpu.own_cpu_seconds(), cpu.cpu_seconds(self.pids)
        machine = cpu.machine_busy_seconds()
        try:
            yield seen
        finally:
            after = cpu.cpu_seconds(self.pids)
            seen.seconds = time.monotonic() - began
            seen.bench_cpu = cpu.own_cpu_seconds() - bench
            seen.machine_cpu = cpu.machine_busy_seconds() - machine
            seen.cpu = {name: after[name] - before[name] for name in self.pids}
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
                # One at the end too; a window shorter than the projector's first batch (it
                # gathers for PROJECTOR_LINGER_MS) waits for that batch, a few seconds at most.
                deadline = time.monotonic() + 5.0
                while True:
                    await self._poll_lag(seen, every=None)
                    if seen.lag_s or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)

    async def _poll_lag(self, seen: Observation, every: float | None) -> None:
        """Sample the lag every `every` seconds until cancelled, or once."""
        assert self.projector_metrics is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(self.projector_metrics) as response:
                        lag = parse_lag(await response.text())
                        if lag is not None:
                            seen.lag_s.append(lag)
                if every is None:
                    return
                await asyncio.sleep(every)


def report(seen: Observation, probe: Probe, completed: int, unit: str = "order") -> list[str]:
    """CPU per completed `unit` for each process and in all, cores used, projector lag."""
    lines = [f"CPU ({probe.note}; {seen.seconds:.1f} s window)"]
    if not seen.cpu:
        lines.append("  stack CPU not measured: no process of the stack found")
    per = max(completed, 1)
    for name, spent in seen.cpu.items():
        lines.append(f"  {name:<12} {spent * 1000 / per:8.2f} ms/{unit}  {spent / seen.seconds:5.2f} cores")
    if seen.cpu:
        total = sum(seen.cpu.values())
        lines.append(f"  {'stack total':<12} {total * 1000 / per:8.2f} ms/{unit}  {total / seen.seconds:5.2f} cores"
                     f"  ({completed} {unit}s)")
    lines.append(f"  {'load client':<12} {seen.bench_cpu * 1000 / per:8.2f} ms/{unit}  "
                 f"{seen.bench_cpu / seen.seconds:5.2f} cores  (not in the total)")
    others = seen.machine_cpu - sum(seen.cpu.values()) - seen.bench_cpu
    lines.append(f"  machine busy {seen.machine_cpu / seen.seconds:5.2f} of {os.cpu_count()} cores"
                 + (f", {max(others, 0) / seen.seconds:.2f} of them outside the stack and the client"
                    if seen.cpu else ""))
    if probe.projector_metrics is None:
        lines.append("Projector lag: not measured (no ops port known)")
    else:
        lines.append("Projector lag (ms, engine_projector_lag_seconds every 0.5 s)")
        lines.append(summary("projector lag", [s * 1000 for s in seen.lag_s]))
    return lines


def stack_cpu_ms_per(seen: Observation, completed: int) -> float:
    """The stack's CPU milliseconds per completed order (NaN when not measured)."""
    if not seen.cpu or not completed:
        return float("nan")
    return sum(seen.cpu.values()) * 1000 / completed
