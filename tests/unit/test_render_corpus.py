"""Golden files: real-looking agent replies (`*.md`) and the mrkdwn they must become (`*.mrkdwn`).

The expected files are reviewed by eye for how they read in Slack. After an intended change to the
renderer, rewrite them with `UPDATE_GOLDEN=1 pytest tests/unit/test_render_corpus.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.slack.render import MAX_TEXT, fallback_text, reply_texts, to_mrkdwn
from tests.unit.mrkdwn_checks import FENCE, LINK, balanced, loses_nothing, unsafe

CORPUS = Path(__file__).parent / "markdown_corpus"
SOURCES = sorted(CORPUS.glob("*.md"))
LONG = CORPUS / "long_reply.md"


def test_the_corpus_is_there() -> None:
    assert len(SOURCES) >= 5 and LONG in SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_golden(source: Path) -> None:
    got = to_mrkdwn(source.read_text(encoding="utf-8")) + "\n"
    golden = source.with_suffix(".mrkdwn")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_corpus_output_is_safe_and_every_part_fits(source: Path) -> None:
    markdown = source.read_text(encoding="utf-8")
    assert unsafe(to_mrkdwn(markdown)) == []
    for named in (True, False):
        parts = reply_texts("ops-agent", markdown, named_by_username=named)
        assert parts and all(len(p) <= MAX_TEXT and balanced(p) and unsafe(p) == [] for p in parts)
    assert len(fallback_text(markdown)) <= 150


def test_the_mentions_reply_pings_no_one() -> None:
    out = to_mrkdwn((CORPUS / "mentions.md").read_text(encoding="utf-8"))
    for sequence in ("<!channel>", "<!here>", "<!everyone>", "<!subteam^", "<@U", "<#C", "<!date"):
        assert sequence not in out
    shown = LINK.sub(lambda m: m.group("label") or "", out)  # a link's address pings no one
    assert "@channel" not in shown and "@here" not in shown and "@everyone" not in shown
    assert "@jane.doe" in out and "@Bob" in out  # ordinary handles are left as written


def test_the_40000_character_reply_splits_into_balanced_parts() -> None:
    markdown = LONG.read_text(encoding="utf-8")
    assert len(markdown) >= 40_000
    body = to_mrkdwn(markdown)
    parts = reply_texts("ops-agent", markdown, named_by_username=False)
    assert len(parts) >= 12
    assert all(len(p) <= MAX_TEXT and p.startswith("*ops-agent*: ") for p in parts)
    assert all(balanced(p) for p in parts)
    assert sum(p.count(FENCE) for p in parts) > body.count(FENCE)  # some code block was cut and reopened
    # Nothing lost: the parts, without the name, the added fences and whitespace, are the whole reply.
    assert loses_nothing([p.removeprefix("*ops-agent*: ") for p in parts], body)
