"""Pure helpers: percentiles, summaries and ratios. No I/O, no clocks."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile by linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, not {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """count, p50/p90/p99, min, max and mean, each multiplied by `scale` (1000 turns seconds into ms)."""
    if not values:
        return {"count": 0}
    out: dict[str, float] = {"count": len(values)}
    for pct in PERCENTILES:
        out[f"p{pct}"] = round(percentile(values, pct) * scale, 3)
    out["min"] = round(min(values) * scale, 3)
    out["max"] = round(max(values) * scale, 3)
    out["mean"] = round(sum(values) / len(values) * scale, 3)
    return out


def ratio(measured: float, baseline: float) -> float:
    """measured / baseline, or infinity when the baseline is zero (never hides a miss)."""
    if baseline <= 0:
        return math.inf
    return measured / baseline


def in_order(expected: Sequence[str], seen: Sequence[str]) -> bool:
    """True when `seen` has exactly the items of `expected`, in the same order."""
    return list(expected) == list(seen)
