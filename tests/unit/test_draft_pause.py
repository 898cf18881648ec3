"""After Slack rate-limits a draft with Retry-After, the process's drafts pause for that long (live.py's
docstring: "the process pauses its drafts for Retry-After"); a new draft opened meanwhile asked Slack again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.live import LiveMessages
from bridge.slack.post import Author
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


@pytest.mark.parametrize(("mode", "method"), [("stream", "chat.startStream"), ("update", "chat.postMessage")])
def test_a_new_draft_waits_out_the_retry_after_slack_gave_the_last(fake: FakeSlack, mode: str, method: str) -> None:
    root = fake.add_message("C1", "hi")
    live = LiveMessages(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url), mode=mode)  # type: ignore[arg-type]
    fake.fail_next(method, error="ratelimited", headers={"retry-after": "30"})

    async def run() -> None:
        first = await live.start("C1", root, "Look", "Look", Author("alice"), (fake.team_id, "U0123ABCD"))
        assert first is None  # rate-limited: skipped, drafts paused for 30 s
        await live.start("C1", root, "Other", "Other", Author("bob"), (fake.team_id, "U0123ABCD"))

    asyncio.run(run())
    assert len(fake.calls_to(method)) == 1, [c.args.get("username") for c in fake.calls_to(method)]


def test_drafts_open_again_once_the_retry_after_has_passed(fake: FakeSlack) -> None:
    root = fake.add_message("C1", "hi")
    live = LiveMessages(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url), mode="stream")  # type: ignore[arg-type]
    fake.fail_next("chat.startStream", error="ratelimited", headers={"retry-after": "1"})

    async def run() -> object:
        assert await live.start("C1", root, "Look", "Look", Author("alice"), (fake.team_id, "U0123ABCD")) is None
        await asyncio.sleep(1.1)
        return await live.start("C1", root, "Other", "Other", Author("bob"), (fake.team_id, "U0123ABCD"))

    assert asyncio.run(run()) is not None
    assert len(fake.calls_to("chat.startStream")) == 2
