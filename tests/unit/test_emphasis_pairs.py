"""Markers mrkdwn would pair into emphasis, made look-alikes (bridge/slack/markdown.py `_unpaired`): the same
spans as the plain regex for a span (kept here as the statement), found in time proportional to the text.
A long line of openings that never close cost quadratic time with that regex (1.7 s for 15,000 characters)."""

from __future__ import annotations

import re
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.slack.markdown import _unpaired
from tests.unit.cost_ratio import growth, linear

_STATEMENT = tuple(
    (re.compile(rf"(?<![\w{re.escape(m)}]){re.escape(m)}([^\s{re.escape(m)}](?:[^\n]*?[^\s{re.escape(m)}])?)"
                rf"{re.escape(m)}(?![\w{re.escape(m)}])"), twin)
    for m, twin in (("*", "∗"), ("_", "＿"), ("~", "∼"))
)


def _stated(text: str) -> str:
    for pair, twin in _STATEMENT:
        text = pair.sub(partial(lambda t, span: t + span.group(1) + t, twin), text)
    return text.replace("`", "ˋ")


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet="ab _*~\n\t.é1", max_size=60))
def test_the_same_spans_as_the_regex_for_a_span(text: str) -> None:
    assert _unpaired(text) == _stated(text)


@pytest.mark.parametrize(
    "text",
    ["a _b_ c", "_a_b_", "__a__", "*a* *b*", "_a\nb_", "x_a_ _b_x", "~a ~b~", "*_a_*", "_ a_", "_a _", "é_a_é", "_é_"],
)
def test_cases_worth_naming(text: str) -> None:
    assert _unpaired(text) == _stated(text)


@pytest.mark.parametrize("unit", ["_a ", "*a ", "~a ", "_a _b_ "])
def test_a_longer_line_costs_in_proportion(unit: str) -> None:
    ratio = growth(_unpaired, unit, 1_000)
    assert linear(ratio), f"{unit!r}: a line 20 times longer cost {ratio:.0f}x"
