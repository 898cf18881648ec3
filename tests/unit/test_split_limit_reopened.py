"""revBU: split_mrkdwn's parts are "at most `limit` characters"; a part that reopens a code block, closes it, and is
then cut inside inline code gets the closing backtick on top of its limit (the inline-code check is skipped when
the part started inside a code block)."""

from __future__ import annotations

from bridge.slack.render import MAX_TEXT, reply_texts, split_mrkdwn


def test_a_part_after_a_reopened_code_block_keeps_the_limit() -> None:
    text = (
        "`x y`éˋˋ&lt;https://a.b/c|d e&gt;🇫🇷ab\n\n```\nq r\n`\u200b`\u200b`\u200b`*b*\n🇫🇷:tada:&amp;amp;abé &gt; q\n```"
        "\n\nˋˋˋˋ:tada:é`x y`"
    )
    parts = split_mrkdwn(text, 29)
    assert all(len(p) <= 29 for p in parts), [(len(p), p) for p in parts]


def test_a_long_reply_with_code_then_inline_code_keeps_its_parts_within_the_limit() -> None:
    code = "\n".join(f"line {i:03d} = compute(value_{i}, other_{i})  # step" for i in range(80))
    prose = ("word " * 300) + "x" * 1668 + " then run `make test all` and `pytest -q now` " + ("more " * 400)
    parts = reply_texts("alice", f"Here is the script:\n\n```python\n{code}\n```\n\n{prose}", True)
    assert all(len(p) <= MAX_TEXT - 1 for p in parts), [len(p) for p in parts]
