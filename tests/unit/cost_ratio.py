"""How a function's cost grows with its input, measured against itself in the same run (never a timed assertion):
an input `factor` times longer should cost about `factor` times as much, where quadratic work costs `factor`
squared. Measured in CPU time of the thread (time.thread_time), which other processes do not lengthen; short and
long runs are interleaved and the best of each kept."""

from __future__ import annotations

import time
from collections.abc import Callable


def growth(work: Callable[[str], object], unit: str, length: int, factor: int = 20, tries: int = 5) -> float:
    short, long = unit * (length // len(unit)), unit * (length * factor // len(unit))
    best = {short: float("inf"), long: float("inf")}
    for _ in range(tries):
        for text in (short, long):
            started = time.thread_time()
            work(text)
            best[text] = min(best[text], time.thread_time() - started)
    return best[long] / max(best[short], 1e-6)


def linear(ratio: float, factor: int = 20) -> bool:
    """Far below the square of `factor`: five times `factor` at most."""
    return ratio < factor * 5
