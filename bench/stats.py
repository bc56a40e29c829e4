"""Percentiles and the printed report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bench.load import OrderRun


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(name: str, values_ms: Sequence[float]) -> str:
    if not values_ms:
        return f"  {name:<28} (no samples)"
    ps = "  ".join(f"p{p}={percentile(values_ms, p):8.1f}" for p in (50, 90, 99))
    return f"  {name:<28} {ps}  max={max(values_ms):8.1f}  n={len(values_ms)}"


@dataclass
class Figures:
    """What a run of orders measured, from the client's records (`bench.load.OrderRun`)."""

    offered: int
    accepted: int
    completed: int  # reached a terminal status
    by_status: dict[str, int]
    errors: list[str]
    gaps: int  # sequence gaps or duplicates over all streams
    accept_seconds: float  # first POST to last 202
    complete_seconds: float  # first POST to last terminal event seen
    post_ms: list[float]
    accept_to_terminal_ms: list[float]
    delivery_ms: list[float]

    @property
    def completed_per_s(self) -> float:
        return self.completed / max(self.complete_seconds, 1e-9)


def figures(runs: Sequence[OrderRun], began: float) -> Figures:
    """Tally `runs`, whose first POST was at monotonic time `began`."""
    accepted = [r for r in runs if r.http_status == 202]
    done = [r for r in runs if r.terminal_status and r.terminal_at is not None]
    by_status: dict[str, int] = {}
    for r in done:
        by_status[r.terminal_status] = by_status.get(r.terminal_status, 0) + 1  # type: ignore[index]
    last_post = max((r.post_started + (r.post_ms or 0) / 1000 for r in accepted), default=began)
    return Figures(
        offered=len(runs), accepted=len(accepted), completed=len(done), by_status=dict(sorted(by_status.items())),
        errors=[r.error for r in runs if r.error], gaps=sum(r.gaps for r in runs),
        accept_seconds=last_post - began,
        complete_seconds=max((r.terminal_at for r in done if r.terminal_at is not None), default=began) - began,
        post_ms=[r.post_ms for r in accepted if r.post_ms is not None],
        accept_to_terminal_ms=[r.accept_to_terminal_ms for r in done if r.accept_to_terminal_ms is not None],
        delivery_ms=[d for r in runs for d in r.delivery_ms],
    )


def report(f: Figures) -> list[str]:
    """Throughput, latency percentiles and stream integrity, as printed."""
    lines = [
        "Throughput",
        f"  accepted    {f.accepted / max(f.accept_seconds, 1e-9):8.1f} orders/s "
        f"({f.accepted}/{f.offered} in {f.accept_seconds:.1f} s)",
        f"  completed   {f.completed_per_s:8.1f} orders/s ({f.completed} terminal in {f.complete_seconds:.1f} s, "
        f"first POST to last terminal: {', '.join(f'{k} {v}' for k, v in f.by_status.items())})",
        "Latency (ms)",
        summary("POST /api/orders/execute", f.post_ms),
        summary("accepted -> terminal", f.accept_to_terminal_ms),
        summary("event -> WebSocket client", f.delivery_ms),
        f"Stream integrity: {f.gaps} sequence gaps or duplicates; {len(f.errors)} errors",
    ]
    return lines + [f"  {error}" for error in f.errors[:5]]
