"""Percentiles and the printed report."""

from __future__ import annotations

from typing import Sequence


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
