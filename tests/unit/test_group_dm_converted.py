"""Slack lets members convert a group DM to a private channel (slack.com/help/articles/217555437), keeping the
conversation. The directory asks conversations.info again every NAME_KEPT_SECONDS ('channels get renamed') and learns
the channel's new name, but a conversation once taken for a group DM (Directory._mpims) stays one for the life of the
process: the agents are told '[alice in a group direct message on Slack]' in what is now #launch-plan."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.slack.directory import NAME_KEPT_SECONDS, Directory
from bridge.turn_input import InputAssembly
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_reference import DEFAULT_SCOPES

GROUP_DM = "G0456MPIM"


@pytest.mark.parametrize("scopes", [DEFAULT_SCOPES, DEFAULT_SCOPES + ",mpim:read"], ids=["refused", "is_mpim"])
def test_a_group_dm_converted_to_a_private_channel_is_named_once_looked_up_again(scopes: str) -> None:
    with FakeSlack(scopes=scopes) as slack:
        slack.add_channel(GROUP_DM, "mpdm-alice--bob--carol-1", is_mpim=True)
        now = [0.0]

        async def main() -> tuple[str, str, str]:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), clock=lambda: now[0])
            inputs = InputAssembly(Settings(), None, names, None)  # type: ignore[arg-type]
            before = await names.channel_shown(GROUP_DM)
            slack.add_channel(GROUP_DM, "launch-plan", is_private=True)  # converted: a private channel now
            now[0] += NAME_KEPT_SECONDS + 1
            after = await names.channel_shown(GROUP_DM)
            prefix = inputs._prefix("alice", GROUP_DM, await names.channel_name(GROUP_DM))
            return before, after, prefix

        before, after, prefix = asyncio.run(main())
        assert before == "a group direct message"
        assert len(slack.calls_to("conversations.info")) == 2  # asked again, and told its new name and kind
        assert (after, prefix) == ("#launch-plan", "[alice in #launch-plan on Slack] "), (after, prefix)
