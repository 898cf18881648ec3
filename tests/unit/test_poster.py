"""The poster's own rewrites of a part (bridge/slack/post.py) against the fake Slack."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.post import SlackPoster
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


@pytest.mark.parametrize("reply", ["> quoted first\n\nthen mine", "```\nmake all\n```"])
def test_a_reply_refused_its_custom_name_keeps_a_leading_quote_or_code_block(fake: FakeSlack, reply: str) -> None:
    """Slack refused the custom username (no chat:write.customize): the name was put before the text on the same
    line, and a reply that opens with a quote showed a literal `>` (a quote must start its line)."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    [part] = poster.parts("bob", reply)
    fake.fail_next("chat.postMessage", error="missing_scope")
    asyncio.run(poster.post("C1", root, part))
    [posted] = [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")]
    assert posted == poster.parts("bob", reply)[0].text  # what a reply is from then on: the same text
    assert posted.startswith("*bob*: \n"), posted
