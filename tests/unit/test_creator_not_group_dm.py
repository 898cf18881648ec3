"""member_facts takes any conversations.info missing_scope whose `needed` lists mpim:read among others for a
group DM. A token short of channels:read/groups:read is refused on a public or private channel with `needed`
naming the method's accepted scopes (x-accepted-oauth-scopes: channels:read,groups:read,mpim:read,im:read), and its
creator is told 'Slack does not tell me who started a group direct message' in a channel that is none, instead of
Slack's own refusal. Directory._refused_kind reads the same refusal as no group DM (needed == "mpim:read" only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.slack import blocks
from bridge.slack.directory import Directory
from bridge.slack.member_facts import member_facts
from bridge.slack.permissions import GROUP_DM_CREATOR

ACCEPTED = "channels:read,groups:read,mpim:read,im:read"  # conversations.info's x-accepted-oauth-scopes
PROVIDED = "app_mentions:read,commands"  # as the captured missing_scope body


class Refusing(AsyncWebClient):
    def __init__(self) -> None:
        super().__init__(token="xoxb-test")

    async def users_info(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return {"ok": True, "user": {"id": kwargs["user"]}}

    async def conversations_info(self, **kwargs: Any) -> Any:  # type: ignore[override]
        body = {"ok": False, "error": "missing_scope", "needed": ACCEPTED, "provided": PROVIDED}
        response = AsyncSlackResponse(client=self, http_verb="POST", api_url="https://slack.com/api/conversations.info",
                                      req_args={}, data=body, headers={}, status_code=200)
        raise SlackApiError("The request to the Slack API failed.", response)


@pytest.mark.parametrize("channel", ["C0123PUBLIC", "G0123PRIVATE"])
def test_a_channel_refused_for_scopes_is_not_said_to_be_a_group_dm(channel: str) -> None:
    member = asyncio.run(member_facts(Refusing(), "U1", channel, with_creator=True))
    directory = Directory(Refusing())
    asyncio.run(directory.channel_name(channel))
    assert directory.conversation_words(channel) is None  # the directory: not a group DM
    words = blocks.refused("the channel's creator", "/letta", member.admin_unknown, member.creator_unknown).text
    assert member.creator_unknown != GROUP_DM_CREATOR, words
    assert "group direct message" not in words, words
