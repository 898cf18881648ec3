"""The fake Slack's group DMs as Slack documents them: which message events reach an app, and the thread read
that needs mpim:history."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.reference import SLACK, load

from .slack import DEFAULT_SCOPES, FakeSlack
from .slack_delivery import bot_events, delivered

GROUP_DM = "G024BE91L"
MANIFEST = """settings:
  event_subscriptions:
    bot_events:
      - app_mention
      - message.groups                      # a comment
  interactivity:
"""


def test_a_message_reaches_the_app_only_under_its_kinds_subscription_and_scope() -> None:
    events = bot_events(MANIFEST)
    assert events == {"app_mention", "message.groups"}
    group_dm = load(SLACK / "events" / "message_mpim_in_thread.json")["event"]
    private = dict(group_dm, channel_type="group")
    assert delivered(private, events, DEFAULT_SCOPES) and not delivered(group_dm, events, DEFAULT_SCOPES)
    assert delivered(group_dm, events | {"message.mpim"}, DEFAULT_SCOPES)
    without = ",".join(s for s in DEFAULT_SCOPES.split(",") if s != "mpim:history")
    assert not delivered(group_dm, events | {"message.mpim"}, without)
    mention = load(SLACK / "events" / "app_mention.json")["event"]
    assert delivered(mention, events, DEFAULT_SCOPES) and not delivered(mention, {"message.groups"}, DEFAULT_SCOPES)


@pytest.mark.parametrize("granted", [True, False])
def test_a_group_dms_thread_is_read_only_with_mpim_history(granted: bool) -> None:
    scopes = DEFAULT_SCOPES if granted else ",".join(s for s in DEFAULT_SCOPES.split(",") if s != "mpim:history")
    with FakeSlack(scopes=scopes) as fake:
        fake.add_channel(GROUP_DM, "mpdm-maria--bob--letta-1", is_mpim=True)
        root = fake.add_message(GROUP_DM, "shall we?")

        async def read() -> list[str]:
            client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
            try:
                return [m["ts"] for m in (await client.conversations_replies(channel=GROUP_DM, ts=root))["messages"]]
            except SlackApiError as exc:
                return [f"{exc.response['error']} {exc.response['needed']}"]

        assert asyncio.run(read()) == ([root] if granted else ["missing_scope mpim:history"])
