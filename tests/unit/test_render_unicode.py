"""Splitting replies written in any script: a cut never falls inside what a reader sees as one character (a flag, a
family emoji, a skin tone, a letter and its accent or vowel sign)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.slack.render import reply_texts, split_mrkdwn
from tests.unit.mrkdwn_checks import loses_nothing

ZWJ = "\u200d"


def _joins_back(char: str) -> bool:
    """Whether `char` belongs to the character before it (a mark, a joiner, a variation selector, a skin tone)."""
    return unicodedata.category(char).startswith("M") or char == ZWJ or "\ufe00" <= char <= "\ufe0f" or (
        "\U0001f3fb" <= char <= "\U0001f3ff"
    )


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


@pytest.mark.parametrize(
    "unit",
    ["👨\u200d👩\u200d👧", "🇺🇸", "e\u0301", "👍🏽", "ก\u0e35", "❤\ufe0f", "&amp;e\u0301", "नमस्ते"],
    ids=["family", "flag", "accent", "skin-tone", "thai-vowel", "variation", "entity-and-mark", "devanagari"],
)
@pytest.mark.parametrize("limit", [3499, 100, 17])
def test_a_cut_without_spaces_keeps_each_character_whole(unit: str, limit: int) -> None:
    """No space for 1,700 characters (a run of emoji, a line of Thai): the cut fell anywhere, so a flag became two
    letters (and every flag after it paired wrongly: 🇺🇸🇺🇸 read on as 🇸🇺), or an accent started the next message."""
    text = unit * (3 * limit // len(unit) + 1)
    parts = split_mrkdwn(text, limit)
    assert "".join(parts) == text
    for part in parts:
        assert len(part) <= limit
        assert not _joins_back(part[0]) and not part.endswith(ZWJ), (part[:3], part[-3:])
        if _regional(unit[0]):
            assert sum(map(_regional, part)) % 2 == 0, "a flag cut in two"
    assert not _joins_back(reply_texts("bob", unit * 2000, True)[1][0])


UNITS = ["a", "b", " ", "\n", "`", "&amp;", "&lt;", "名"]
UNITS += ["🇺🇸", "🇫🇷", "👨\u200d👩\u200d👧", "👍🏽", "e\u0301", "ก\u0e35", "❤\ufe0f"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(UNITS), max_size=120), st.integers(min_value=16, max_value=60))
def test_property_no_cut_inside_a_character(units: list[str], limit: int) -> None:
    text = "".join(units)
    parts = split_mrkdwn(text, limit)
    assert all(len(p) <= limit for p in parts)
    assert loses_nothing(parts, text)
    for part in parts:
        assert not _joins_back(part[0]) and not part.endswith(ZWJ), parts
        assert all(len(run) % 2 == 0 for run in re.findall("[\U0001f1e6-\U0001f1ff]+", part)), "a flag cut in two"


@pytest.mark.parametrize("code", [":thumbsup:", ":+1::skin-tone-3:", ":white_check_mark:", ":tada:"])
@pytest.mark.parametrize("limit", [3499, 100, 40])
def test_a_cut_without_spaces_keeps_each_emoji_shortcode_whole(code: str, limit: int) -> None:
    """A run of emoji written as shortcodes, no space in it: the cut fell inside one (`:thumbs` | `up:`), and both
    messages showed the words instead of the emoji."""
    text = code * (3 * limit // len(code) + 1)
    parts = split_mrkdwn(text, limit)
    assert "".join(parts) == text
    for part in parts:
        assert len(part) <= limit
        assert re.fullmatch(f"(?:{re.escape(code)})+", part), (part[:12], part[-12:])
