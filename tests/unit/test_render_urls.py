"""A URL with @channel, @here or @everyone in it still works; the words themselves still cannot ping.

`https://youtube.com/@channelname` came out as `https://youtube.com/@\u200bchannelname`: the zero-width space
that defuses a broadcast word went into the URL too, and the link Slack made of it led nowhere. A bare URL (or
email) holding such a word now becomes a Slack link the bridge makes, `<https://youtube.com/@channelname>`,
inside which Slack reads no mention; in code, in a table or in a link's label a URL is kept as written. The
words anywhere else are defused as before.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bridge.slack.live import stream_text
from bridge.slack.markdown import escape, to_mrkdwn
from tests.unit.mrkdwn_checks import unsafe

ZW = "\u200b"


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("see https://youtube.com/@channelname now", "see <https://youtube.com/@channelname> now"),
        ("https://example.com/@here/x", "<https://example.com/@here/x>"),
        ("watch https://youtube.com/@Everyone.", "watch <https://youtube.com/@Everyone>."),
        ("(at https://e.com/@channel/a?b=1&c=2)", "(at <https://e.com/@channel/a?b=1&amp;c=2>)"),
        ("https://en.wikipedia.org/wiki/@here_(x), see", "<https://en.wikipedia.org/wiki/@here_(x)>, see"),
        ("**https://e.com/@here**", "*<https://e.com/@here>*"),
        ("www.youtube.com/@everyone", "<http://www.youtube.com/@everyone|www.youtube.com/@everyone>"),
        ("write to ops@here.com", "write to <mailto:ops@here.com|ops@here.com>"),
        ("<ops@channel.io>", "<mailto:ops@channel.io|ops@channel.io>"),
        ("[www.e.com/@here](http://www.e.com/@here)", "<http://www.e.com/@here|www.e.com/@here>"),
    ],
)
def test_a_url_holding_a_broadcast_word_is_a_working_link(markdown: str, mrkdwn: str) -> None:
    out = to_mrkdwn(markdown)
    assert out == mrkdwn
    assert unsafe(out) == []


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("`curl https://x.io/@here`", "`curl https://x.io/@here`"),
        ("```\nopen https://youtube.com/@channelname\n```", "```\nopen https://youtube.com/@channelname\n```"),
        ("`@here and https://x.io/@here`", f"`@{ZW}here and https://x.io/@here`"),
        ("| a |\n|---|\n| https://x.io/@here |", "```\na\n------------------\nhttps://x.io/@here\n```"),
    ],
)
def test_code_keeps_a_url_as_written_and_still_defuses_the_word(markdown: str, mrkdwn: str) -> None:
    out = to_mrkdwn(markdown)
    assert out == mrkdwn
    assert unsafe(out) == []


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("@channel see https://x.io/a and @here", f"@{ZW}channel see https://x.io/a and @{ZW}here"),
        ("https://x.io/ @here", f"https://x.io/ @{ZW}here"),
        ("foo@channel, ops@here.", f"foo@{ZW}channel, ops@{ZW}here."),
        ("[@Here](https://e.com/@here)", f"<https://e.com/@here|@{ZW}Here>"),
        ("[x](ftp://x.io/@here)", f"x (ftp://x.io/@{ZW}here)"),
    ],
)
def test_the_words_outside_a_url_are_still_defused(markdown: str, mrkdwn: str) -> None:
    out = to_mrkdwn(markdown)
    assert out == mrkdwn
    assert unsafe(out) == []


def test_texts_slack_renders_unseen_stay_defused_everywhere() -> None:
    """Bridge notices (`escape`) and a growing stream (Slack's own Markdown) are not links the bridge makes."""
    assert escape("https://x.io/@here") == f"https://x.io/@{ZW}here"
    assert stream_text("see https://x.io/@channel now") == f"see https://x.io/@{ZW}channel now"


# --- property: any URL holding the words survives, wherever it stands ---------------------------------

_WORDS = ["@channel", "@here", "@everyone", "@Here", "@CHANNEL", "@channelname", "@here_x"]
# No `_`, `*` or `~` pairs: Markdown reads them as emphasis even inside a bare URL (CommonMark has no bare URLs).
_SEGMENT = st.text(alphabet="abcxyz0123456789-.%=+", min_size=1, max_size=6)
urls = st.builds(
    lambda scheme, host, parts: f"{scheme}{host}.com/" + "/".join(parts),
    st.sampled_from(["https://", "http://"]),
    st.text(alphabet="abcdefgh", min_size=1, max_size=8),
    st.lists(st.one_of(_SEGMENT, st.sampled_from(_WORDS)), min_size=1, max_size=4).filter(
        lambda parts: any(p in _WORDS for p in parts) and parts[-1][-1] != "."
    ),
)
_PROSE = st.sampled_from(["", "see ", "@here ", "a, ", "(", "**", "- ", "> ", "1. ", "word @channel "])
_AFTER = st.sampled_from(["", " now", ".", ",", ")", "!", " @everyone", "**", "\n\nnext"])


@settings(max_examples=300, deadline=None)
@given(_PROSE, urls, _AFTER)
@example("see ", "https://youtube.com/@channelname", ".")
def test_property_a_bare_url_is_linked_as_written(before: str, url: str, after: str) -> None:
    markdown = before + url + (")" if before == "(" and after != ")" else after)
    out = to_mrkdwn(markdown)
    assert f"<{url.replace('&', '&amp;')}>" in out, (markdown, out)
    assert unsafe(out) == [], (markdown, out)


@settings(max_examples=200, deadline=None)
@given(_PROSE, urls, st.booleans())
def test_property_a_url_in_code_is_kept_as_written(before: str, url: str, block: bool) -> None:
    markdown = f"{before}\n\n```\n{url} @here\n```" if block else f"{before}`{url} @here`"
    out = to_mrkdwn(markdown)
    assert f"{url} @{ZW}here" in out, (markdown, out)
    assert unsafe(out) == [], (markdown, out)


def test_a_streamed_draft_never_shows_a_link_disguised_as_another_address() -> None:
    """The finished reply shows such a link as its label with the real address after it; the draft must not show
    it as a link either, at any length of the stream (what was sent is only ever appended to)."""
    markdown = "Reset it here: [https://docs.example.com/reset](https://evil.example.net/x), or [docs](https://ok.io)"
    assert "(<https://evil.example.net/x>)" in to_mrkdwn(markdown)
    sent = ""
    for end in range(1, len(markdown) + 1):
        shown = stream_text(markdown[:end])
        assert shown.startswith(sent), (sent, shown)
        sent = shown
    tokens = MarkdownIt("commonmark").parseInline(sent)[0].children or []
    links = [(t.attrGet("href"), tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "link_open"]
    assert links == [("https://ok.io", "docs")], links
