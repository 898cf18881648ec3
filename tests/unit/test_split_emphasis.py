"""A reply split into several messages (or a message cut into section blocks) closes and reopens a code block or
inline code cut in two; emphasis (`_`, `*`, `~`) was not: a long italic or bold paragraph cut in two left its marker
opened at the start of one part and closed at the end of the next, which Slack shows as literal markers and no
emphasis in either part."""

from __future__ import annotations

import pytest

from bridge.slack.feedback import text_blocks
from bridge.slack.render import MAX_TEXT, reply_texts, split_mrkdwn
from tests.unit.mrkdwn_checks import loses_nothing


@pytest.mark.parametrize("marker", ["_", "*"])
def test_a_long_emphasised_paragraph_split_in_two_keeps_its_emphasis_in_each_part(marker: str) -> None:
    md = ("*" if marker == "_" else "**") + " ".join(["quoted"] * 700) + ("*" if marker == "_" else "**")
    parts = reply_texts("bob", md, True)
    assert len(parts) == 2 and all(len(p) <= MAX_TEXT for p in parts)
    for part in parts:
        assert part.startswith(marker) and part.endswith(marker), (part[:12], part[-12:])


def test_a_part_cut_into_sections_keeps_its_emphasis_in_each_section() -> None:
    # A reply with feedback buttons shows its text as section blocks of 3,000 characters.
    part = reply_texts("bob", "Intro.\n\n*" + " ".join(["quoted"] * 480) + "*", True)[0]
    sections = [b["text"]["text"] for b in text_blocks(part)]
    assert len(sections) == 2
    emphasised = [line for section in sections for line in section.split("\n") if "quoted" in line]
    for line in emphasised:
        assert line.startswith("_") and line.endswith("_"), (line[:12], line[-12:])


def test_nested_emphasis_closes_in_reverse_order_and_reopens_in_order() -> None:
    text = "_aaa *bbb ccc ddd* eee_"
    parts = split_mrkdwn(text, 16)
    assert parts == ["_aaa *bbb ccc*_", "_*ddd* eee_"]
    assert loses_nothing(parts, text)


def test_inline_code_cut_inside_emphasis_closes_before_it_and_reopens_after_it() -> None:
    parts = split_mrkdwn("_see `a b c d e f` now_", 16)
    assert all(len(p) <= 16 for p in parts), parts
    assert parts[0].endswith("`_") and parts[1].startswith("_`"), parts


@pytest.mark.parametrize(
    "text",
    [
        "a * b c d e f g h i j k l m n",  # a lone marker is literal: nothing to close
        "_aaa bbb_\nccc ddd eee fff ggg",  # emphasis closed on its own line before the cut
        "snake_case words here and more words go on_x",  # markers inside words are not emphasis
        "`_aaa bbb` ccc ddd eee fff ggg_",  # a marker in inline code is not emphasis
    ],
)
def test_no_marker_is_added_where_no_emphasis_is_cut(text: str) -> None:
    parts = split_mrkdwn(text, 16)
    assert "".join(parts).count("_") + "".join(parts).count("*") == text.count("_") + text.count("*"), parts


def test_the_added_markers_keep_every_part_within_its_limit() -> None:
    text = "~_*" + "word " * 40 + "end*_~"
    for limit in range(16, 60):
        parts = split_mrkdwn(text, limit)
        assert all(len(p) <= limit for p in parts), (limit, parts)
        assert all(p.startswith("~_*") and p.endswith("*_~") for p in parts), (limit, parts)
        assert loses_nothing(parts, text)
