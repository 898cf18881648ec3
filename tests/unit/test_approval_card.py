"""An approval card within Slack's limits (reference/slack/limits.md: a section's text at most 3,000 characters),
whatever the tool call's arguments and names: a card Slack refuses (invalid_blocks) is never posted, and the tool
call waits for a decision no one can make."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.approvals import card_blocks, card_text, decided_blocks
from bridge.slack.post import Part, SlackPoster
from tests.fakes.slack import FakeSlack

ARGUMENTS = ['{"q": "' + "&" * 1400 + '"}', "<b>" * 600, "a" * 5000]
NAMES = [("alice", "fetch"), ("a" * 400, "t" * 3000)]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


@pytest.mark.parametrize("arguments", ARGUMENTS)
@pytest.mark.parametrize(("agent", "tool"), NAMES)
def test_a_card_with_long_or_escaped_arguments_is_posted(
    fake: FakeSlack, arguments: str, agent: str, tool: str
) -> None:
    """The arguments were clipped to 1,500 characters before escaping, which made each `&` five and each `<` four:
    the section passed 3,000 and Slack refused the card."""
    root = fake.add_message("C1", "hi")
    poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
    part = Part(card_text(agent, tool, 7), None, blocks=card_blocks(7, agent, tool, arguments))
    asyncio.run(poster.post("C1", root, part))
    [posted] = [m for m in fake.messages("C1", root) if m.get("bot_id")]
    assert [b["type"] for b in posted["blocks"]] == ["section", "actions"], "the card went without its buttons"
    decided = decided_blocks(agent, tool, arguments, ["Approved by <@U1>"])
    assert len(decided[0]["text"]["text"]) <= 3000


@pytest.mark.parametrize("arguments", ['{"cmd": "echo ```` done"}', "`x`", "``", "a ````` b ``` c", "```"])
def test_backticks_in_the_arguments_cannot_end_the_cards_code_block(arguments: str) -> None:
    """Four backticks in a tool's argument: the replace of each "```" left a run of three, which ended the card's
    code block early, and the rest showed as formatted text."""
    from bridge.slack.approvals import shown_arguments

    shown = shown_arguments(arguments)
    assert shown.startswith("```") and shown.endswith("```")
    inner = shown[3:-3]
    assert "``" not in inner and not inner.startswith("`") and not inner.endswith("`"), inner
    pretty = json.dumps(json.loads(arguments), indent=2) if arguments.startswith("{") else arguments
    assert inner.replace("\u200b", "") == pretty, "a backtick was lost"
