from __future__ import annotations

from bridge.slack.render import MAX_TEXT, escape, reply_texts, split


def test_escape_makes_pings_and_control_sequences_impossible() -> None:
    out = escape("a <!channel> & <@U123> @here @channel @everyone")
    assert "<" not in out and ">" not in out
    assert "&amp;" in out and "&lt;!channel&gt;" in out
    assert "@here" not in out and "@channel" not in out and "@everyone" not in out


def test_split_keeps_every_character_and_respects_the_limit() -> None:
    paragraphs = [("word " * 300).strip() for _ in range(12)]
    text = "\n\n".join(paragraphs)
    parts = split(text, 2000)
    assert all(len(p) <= 2000 for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_split_of_one_unbroken_run_cuts_hard_without_loss() -> None:
    parts = split("x" * 9000, 4000)
    assert [len(p) for p in parts] == [4000, 4000, 1000]


def test_reply_without_custom_usernames_leads_with_the_bold_name_on_every_part() -> None:
    parts = reply_texts("bob", "para\n\n" * 2000, named_by_username=False)
    assert len(parts) > 1 and all(p.startswith("*bob*: ") and len(p) <= MAX_TEXT for p in parts)
    assert reply_texts("bob", "hi", named_by_username=True) == ["hi"]
    assert reply_texts("bob", "   ", named_by_username=True) == []
