"""A direct message where a channel would be named (bridge/turn_input.py, bridge/slack/directory.py): Slack gives a
DM no name, and its id is no channel, so it is said to be a direct message, with the default prefix or an operator's."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.slack.directory import Directory
from bridge.turn_input import InputAssembly
from tests.fakes.slack import FakeSlack


def _prefix(template: str, channel_id: str, name: str) -> str:
    directory = SimpleNamespace(conversation_words=lambda c: "a direct message" if c.startswith("D") else None)
    inputs = InputAssembly(Settings(letta_context_prefix=template), None, directory, None)  # type: ignore[arg-type]
    return inputs._prefix("alice", channel_id, name)


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("[{user} in #{channel} on Slack] ", "[alice in a direct message on Slack] "),
        ("{user} wrote ({channel}): ", "alice wrote (a direct message): "),
        ("From {user}: ", "From alice: "),
    ],
)
def test_a_dm_is_said_as_a_direct_message_not_as_a_channel_named_by_its_id(template: str, said: str) -> None:
    assert _prefix(template, "D0123ABCD", "D0123ABCD") == said


def test_a_channel_keeps_its_name() -> None:
    assert _prefix("[{user} in #{channel} on Slack] ", "C0123ABCD", "research") == "[alice in #research on Slack] "


def test_a_dm_slack_answers_for_is_named_as_one_where_a_thread_says_where() -> None:
    """An approval card waiting in a DM was said to be "in a thread of #D0123ABCD" (its id, which has no name)."""
    with FakeSlack() as slack:
        slack.add_dm("G0123ABCD", "U0123ABCD")  # not a D… id: known a DM by conversations.info's is_im only

        async def main() -> list[str]:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            return [await names.channel_shown(c) for c in ("D0123ABCD", "G0123ABCD", "C0123ABCD")]

        assert asyncio.run(main()) == ["a direct message", "a direct message", "#agents"]
