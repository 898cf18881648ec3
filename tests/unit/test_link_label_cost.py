"""A link's label is read for addresses (bridge/slack/addresses.py) on the event loop: an agent's long label (a
prompt injection can ask for one) must cost in proportion to its length. Each pattern's label ten times longer
must cost about ten times as much, not a hundred: compared in the same run, not timed against a constant."""

from __future__ import annotations

import time

import pytest

from bridge.slack.addresses import disguised, names_address


def _cost(label: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        names_address(label)
        disguised("https://example.com/", label)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("unit", ["x", "a-", "a.", "ab.", "a@", "a:", ".a", "ab-"])
def test_a_label_ten_times_longer_costs_about_ten_times_as_much(unit: str) -> None:
    short, long = unit * (2_000 // len(unit)), unit * (20_000 // len(unit))
    ratio = _cost(long) / max(_cost(short), 1e-6)
    assert ratio < 40, f"{unit!r}: a 20,000-character label cost {ratio:.0f}x a 2,000-character one"
