"""A reply with a long run that has no place to cut (no space, no line break) is cut mid-word, moved back so as
not to split a character of several code points or an emoji shortcode (bridge/slack/render.py `_hard_cut`). When
no such place is near, the cut must stay near its window: a run of zero-width joiners was cut into one-character
messages (5,000 joiners, 1,502 messages), and `:a:a:a…`, read as shortcodes from each new start, into 248-character
ones (68 messages for 20,000 characters) at quadratic cost on the event loop."""

from __future__ import annotations

import math

import pytest

from bridge.slack.render import MAX_TEXT, reply_texts, split
from tests.unit.cost_ratio import growth, linear
from tests.unit.mrkdwn_checks import loses_nothing

RUNS = ["\u200d", ":a", "a\u200d", "\u200d:", ":tada:", "🇫", "e\u0301", "`a", "x"]


@pytest.mark.parametrize("unit", RUNS)
def test_a_long_run_is_cut_into_about_as_few_messages_as_its_length_needs(unit: str) -> None:
    text = unit * (20_000 // len(unit))
    parts = split(text)
    assert all(len(part) <= MAX_TEXT for part in parts)
    assert len(parts) <= math.ceil(len(text) / MAX_TEXT) + 2, f"{unit!r}: {len(parts)} messages"
    assert loses_nothing(parts, text)


@pytest.mark.parametrize("unit", RUNS)
def test_a_longer_run_costs_in_proportion(unit: str) -> None:
    ratio = growth(split, unit, 4_000)
    assert linear(ratio), f"{unit!r}: a run 20 times longer cost {ratio:.0f}x"


@pytest.mark.parametrize(("head", "unit"), [("", "x"), ("see https://a.example/", ")")])
def test_a_long_address_is_found_in_proportion(head: str, unit: str) -> None:
    """A word with no `@` was read from each of its characters for an email's start (bridge/slack/markdown.py
    `_BARE`): a 20,000-character run of letters (a base64 blob, say) took 2.4 s to render; a URL's closing
    parentheses were counted again for each one taken off its end."""
    ratio = growth(lambda text: reply_texts("alice", head + text, True), unit, 1_000)
    assert linear(ratio), f"{head + unit!r}: 20 times longer cost {ratio:.0f}x to render"
