"""revBU: a streamed draft must not show a link whose label names another address (markdown._link does not), nor
an invisible character in a label hide the address it names."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bridge.slack.addresses import names_address
from bridge.slack.live import stream_text
from bridge.slack.markdown import to_mrkdwn


def _links(markdown: str) -> list[tuple[str | None, str]]:
    links = []
    for block in MarkdownIt("commonmark").parse(markdown):
        ch = block.children or []
        links += [(t.attrGet("href"), ch[i + 1].content) for i, t in enumerate(ch) if t.type == "link_open"]
    return links


@pytest.mark.parametrize(
    "markdown",
    [
        "Reset: [https://docs.example.com/reset [guide]](https://evil.example.net/x)",  # balanced brackets
        "Reset: [https://docs.example.com/reset\\]](https://evil.example.net/x)",  # an escaped bracket
        "Reset: [https://docs.example.com/reset]\n\n[https://docs.example.com/reset]: https://evil.example.net/x",
        "Reset: [https://docs.example.com/reset][x]\n\n[x]: https://evil.example.net/x",  # a full reference
        "Reset: [https://docs.example.com/reset][]\n\n[https://docs.example.com/reset]: https://evil.example.net/x",
    ],
)
def test_a_streamed_draft_shows_no_disguised_link(markdown: str) -> None:
    assert "(<https://evil.example.net/x>)" in to_mrkdwn(markdown)  # the finished reply shows the real address
    sent = ""
    for end in range(1, len(markdown) + 1):
        shown = stream_text(markdown[:end])
        assert shown.startswith(sent)
        sent = shown
    assert [label for _, label in _links(sent) if names_address(label)] == [], sent


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060", "\ufeff", "\u200c"])
def test_an_invisible_character_in_a_label_does_not_hide_the_address_it_names(invisible: str) -> None:
    """`[paypal\u200b.com](https://evil)` reads `paypal.com` in Slack: it must show the real address too."""
    out = to_mrkdwn(f"Log in at [accounts.paypal{invisible}.com](https://evil.example.net/login)")
    assert "(<https://evil.example.net/login>)" in out, out


TOKENS = ["[", "]", "(", ")", ":", "\\", "\n", " ", "x.com", "https://a.io", "`", "@", "&", "<", "word"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=16))
def test_a_draft_only_ever_grows_as_its_markdown_does(tokens: list[str]) -> None:
    """What is streamed can only be appended to: each longer prefix's text extends the shorter one's."""
    markdown = "".join(tokens)
    sent = ""
    for end in range(1, len(markdown) + 1):
        shown = stream_text(markdown[:end])
        assert shown.startswith(sent), (markdown[:end], sent, shown)
        sent = shown


def test_many_labels_that_open_nowhere_cost_a_draft_in_proportion_to_its_length() -> None:
    """revBY: each `](` whose `]` opens no label scanned back to the start, copying the text for every bracket it
    passed: 8,000 characters took seconds on the event loop at every draft update. Against the same run's
    baseline: four times the text takes about four times as long, not sixteen."""
    def took(repeat: int) -> float:
        text = "x]( " * repeat
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            stream_text(text)
            best = min(best, time.perf_counter() - began)
        return best

    assert took(4000) < 10 * took(1000)
