"""Slack's link markup read as a person sees it, the same in a mention and in the thread before it
(decide.clean_text, before Slack's escaping is undone), and only the links Slack made: a link typed as text stays
as typed. People and channels are named after it (slack/readable.py)."""

from __future__ import annotations

import asyncio

from bridge.domain import Turn
from bridge.slack.decide import clean_text, decide_mention
from bridge.slack.readable import readable
from bridge.slack.sessions import session_title
from tests.unit.test_decide import BOT, _fixture


async def _name(_: str) -> str:
    return "bob"


def mention_words(raw: str) -> str:
    """A mention's words as the agents get them: decided (and stored), then named as the input is assembled."""
    body = _fixture("app_mention.json")
    body["event"]["text"] = f"<@{BOT}> {raw}"
    turn = decide_mention(body, BOT)
    assert isinstance(turn, Turn)
    return asyncio.run(readable(turn.text, _name, _name))


def earlier_words(raw: str) -> str:
    """An earlier message of the thread as the thread context quotes it: named, then cleaned."""
    return clean_text(asyncio.run(readable(raw, _name, _name)), None)


def words(raw: str) -> str:
    return clean_text(raw, None)


def test_a_links_label_holding_a_gt_reads_the_same_in_a_mention_and_in_the_thread_context() -> None:
    """Slack sends a label's `>` as `&gt;`: unescaped before the link was read, the mention's label stopped at it
    and reached the agents as `step 1  (https://x.com/a) step 2>`."""
    raw = "see <https://x.com/a|step 1 &gt; step 2> with <@U0456EFGH> now"
    assert earlier_words(raw) == "see step 1 > step 2 (https://x.com/a) with @bob now"
    assert mention_words(raw) == earlier_words(raw)


def test_a_link_typed_as_text_reaches_the_agents_as_the_person_typed_it() -> None:
    """`<https://evil.example|docs.corp.com>` typed by a person arrives escaped; it is text, not a link to read as
    `docs.corp.com (https://evil.example)`."""
    raw = "is &lt;https://evil.example|docs.corp.com&gt; a link? &amp;lt;no&amp;gt;"
    typed = "is <https://evil.example|docs.corp.com> a link? &lt;no&gt;"
    assert mention_words(raw) == typed
    assert earlier_words(raw) == typed


def test_a_link_reads_as_a_person_sees_it_not_as_slack_markup() -> None:
    """Slack sends a typed `example.com/docs` as `<https://example.com/docs|example.com/docs>`, an email as
    `<mailto:bob@x.com|bob@x.com>`: agents echoing that markup wrote broken links. A label that is the url (with or
    without its scheme, or a mailto's address) is read alone; another label keeps the url beside it."""
    assert words("is <https://example.com/docs|example.com/docs> up?") == "is example.com/docs up?"
    assert words("ask <mailto:bob@x.com|bob@x.com>") == "ask bob@x.com"
    assert words("see <https://example.com/a?b=1&amp;c=2>") == "see https://example.com/a?b=1&c=2"
    assert words("<https://x.org/?a=1&amp;b=2|https://x.org/?a=1&amp;b=2>") == "https://x.org/?a=1&b=2"
    assert words("<http://x.org|http://x.org> and <https://x.org/runbook|the runbook>") == (
        "http://x.org and the runbook (https://x.org/runbook)"
    )
    assert words("<mailto:bob@x.com|Bob> <https://evil.example|good.example>") == (
        "Bob (mailto:bob@x.com) good.example (https://evil.example)"
    )
    assert words("<https://x.org|a &amp;lt; b &amp;amp; c>") == "a &lt; b &amp; c (https://x.org)"


def test_markup_of_other_schemes_stays_as_written() -> None:
    for raw, said in (
        ("<ftp://files.example/a|a>", "<ftp://files.example/a|a>"),
        ("<javascript:alert(1)|click>", "<javascript:alert(1)|click>"),
        ("<slack://open|open &amp; go>", "<slack://open|open & go>"),
        ("<tel:123>", "<tel:123>"),
    ):
        assert words(raw) == said
        assert mention_words(raw) == said


def test_a_session_title_shows_a_links_label_alone_and_a_typed_link_as_typed() -> None:
    """A title has no room for the url beside a label; text a person typed is theirs, `&lt;` included."""
    body = _fixture("app_mention.json")
    for raw, title in (
        ("read <https://x.com/a|step 1 &gt; step 2> first\nthen more", "read step 1 > step 2 first"),
        (
            "ask <mailto:bob@x.com|Bob> or <https://x.org/a_(b)|the page>, at <https://x.org|x.org>",
            "ask Bob or the page, at x.org",
        ),
        ("is &lt;https://evil.example|docs&gt; &amp;lt;ok&amp;gt;?", "is <https://evil.example|docs> &lt;ok&gt;?"),
    ):
        body["event"]["text"] = f"<@{BOT}> {raw}"
        turn = decide_mention(body, BOT)
        assert isinstance(turn, Turn) and session_title(turn.text) == title
