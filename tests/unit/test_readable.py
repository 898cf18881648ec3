"""Slack's markup for people, channels and groups read as names (slack/readable.py); links are read before,
in decide.clean_text (test_link_words)."""

from __future__ import annotations

import asyncio

from bridge.slack.readable import readable

USERS = {"U0456EFGH": "bob", "U0BOTABCD": "letta", "W0789": "Ana María"}
CHANNELS = {"C0999ZZZZ": "deploys"}


async def _user(user_id: str) -> str:
    if user_id == "U0BROKEN1":
        raise RuntimeError("Slack did not answer")
    return USERS.get(user_id, user_id)


async def _channel(channel_id: str) -> str:
    return CHANNELS.get(channel_id, channel_id)


def read(text: str) -> str:
    return asyncio.run(readable(text, _user, _channel))


def test_people_channels_and_groups_are_read_as_their_names() -> None:
    assert read("what did <@U0456EFGH> decide about <#C0999ZZZZ|deploys>?") == "what did @bob decide about #deploys?"
    assert read("<@U0BOTABCD> ask <@W0789> in <#C0999ZZZZ>") == "@letta ask @Ana María in #deploys"
    assert read("<!here> <!channel> <!everyone|everyone>: <!subteam^S012AB|@oncall> and <!subteam^S099>") == (
        "@here @channel @everyone: @oncall and @S099"
    )
    assert read("<@U0456EFGH|bobby> and <#G0PRIV|secret-room>") == "@bobby and #secret-room"


def test_a_name_that_cannot_be_learnt_leaves_the_id_and_other_text_is_untouched() -> None:
    text = "ask <@U0BROKEN1> and <@U0NOBODY1> in <#C0GONE001>"
    assert read(text) == text
    for text in ("no markup at all", "<@lowercase> <#nope>", "a < b > c"):
        assert read(text) == text


def test_each_id_is_asked_once() -> None:
    asked: list[str] = []

    async def user(user_id: str) -> str:
        asked.append(user_id)
        return "bob"

    text = "<@U0456EFGH> <@U0456EFGH> <@U0456EFGH|bob>"
    assert asyncio.run(readable(text, user, _channel)) == "@bob @bob @bob" and asked == ["U0456EFGH"]
