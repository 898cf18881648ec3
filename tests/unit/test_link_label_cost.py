"""A link's label is read for addresses (bridge/slack/addresses.py) on the event loop: an agent's long label (a
prompt injection can ask for one) must cost in proportion to its length, compared in the same run (cost_ratio)."""

from __future__ import annotations

import pytest

from bridge.slack.addresses import disguised, names_address
from tests.unit.cost_ratio import growth, linear


def _read(label: str) -> None:
    names_address(label)
    disguised("https://example.com/", label)


@pytest.mark.parametrize("unit", ["x", "a-", "a.", "ab.", "a@", "a:", ".a", "ab-", "1."])
def test_a_longer_label_costs_in_proportion(unit: str) -> None:
    ratio = growth(_read, unit, 1_000)
    assert linear(ratio), f"{unit!r}: a label 20 times longer cost {ratio:.0f}x"
