"""A link whose label is its own address in typographic quotes or brackets (an agent quoting the site) stays a plain
link: the closing quote was read as part of the host (bridge/slack/addresses.py `_trim` knew only ASCII
punctuation), so the label was taken for a disguise and the address shown twice."""

from __future__ import annotations

import pytest

from bridge.slack.markdown import to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[“www.example.com”](https://www.example.com)", "<https://www.example.com|“www.example.com”>"),
        ("[see “https://example.com/docs”](https://example.com/docs)",
         "<https://example.com/docs|see “https://example.com/docs”>"),
        ("[«www.example.com»](https://www.example.com)", "<https://www.example.com|«www.example.com»>"),
        ("[（www.example.com）](https://www.example.com)", "<https://www.example.com|（www.example.com）>"),
        ("[「www.example.com」](https://www.example.com)", "<https://www.example.com|「www.example.com」>"),
    ],
)
def test_an_honest_label_in_typographic_quotes_stays_a_link(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_a_quoted_label_naming_another_host_still_shows_the_real_address() -> None:
    shown = to_mrkdwn("[“www.paypal.com”](https://evil.example.net/login)")
    assert "|“www.paypal.com”>" not in shown and "(<https://evil.example.net/login>)" in shown, shown
