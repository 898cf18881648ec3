"""A reply's tool call made while Slack's Retry-After for drafts runs (no draft opens meanwhile) is kept: the
stream opened later shows it, or where Slack then refuses streams for good, the reply's notes say it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import ToolProgress, Turn
from bridge.drafts import TurnDrafts
from bridge.slack.live import LiveMessages
from bridge.slack.post import Author, SlackPoster
from bridge.store import open_store
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


@contextlib.asynccontextmanager
async def paused_drafts(fake: FakeSlack, root: str, mode: str) -> AsyncIterator[TurnDrafts]:
    """A turn's drafts while another thread's draft was rate-limited: drafts pause for 1 s."""
    store = open_store("sqlite:///:memory:")
    await store.open()
    try:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        live = LiveMessages(client, mode=mode)  # type: ignore[arg-type]
        other = fake.add_message("C1", "another thread")
        fake.fail_next("chat.startStream", error="ratelimited", headers={"retry-after": "1"})
        assert await live.start("C1", other, "x", "x", Author("bob"), (fake.team_id, "U0123ABCD")) is None
        turn = Turn(fake.team_id, "C1", root, root, "U0123ABCD", "hi", "Ev1")
        turn_id = await store.accept_turn(turn, "otid-Ev1")
        assert turn_id is not None
        yield TurnDrafts(store, SlackPoster(client), live, turn, turn_id, 0.0)
    finally:
        await store.close()


def test_a_tool_call_made_while_drafts_pause_is_not_lost(fake: FakeSlack) -> None:
    root = fake.add_message("C1", "hi")

    async def main() -> bool:
        async with paused_drafts(fake, root, "stream") as drafts:
            await drafts.tool("agent-a", 0, "alice", ToolProgress("call-1", "lookup_orders", "{}", "running"))
            await drafts.tool("agent-a", 0, "alice", ToolProgress("call-1", "lookup_orders", "{}", "done"))
            await asyncio.sleep(1.1)  # the pause is over
            await drafts.tool("agent-a", 0, "alice", ToolProgress("call-2", "send_invoice", "{}", "running"))
            await drafts.tool("agent-a", 0, "alice", ToolProgress("call-2", "send_invoice", "{}", "done"))
            showed = drafts.showed_tasks("agent-a:0")
            await drafts.replace("agent-a:0", "Done: invoice sent.")
            return showed

    showed = asyncio.run(main())
    shown = json.dumps([c.args for c in fake.calls if c.method.startswith("chat.") and c.args.get("thread_ts") == root])
    assert showed  # so the reply's notes leave its tool calls out (turn_asking.py)
    assert "send_invoice" in shown
    assert "lookup_orders" in shown, "the tool call made during the pause shows nowhere"


def test_tool_calls_kept_for_a_stream_slack_then_refuses_for_good_are_left_to_the_notes(fake: FakeSlack) -> None:
    """Streams refused for good once the pause is over: the reply's draft is a message, which shows no task, so
    its tool calls are said in the reply's notes (not left out as 'shown')."""
    root = fake.add_message("C1", "hi")

    async def main() -> bool:
        async with paused_drafts(fake, root, "auto") as drafts:
            await drafts.tool("agent-a", 0, "alice", ToolProgress("call-1", "lookup_orders", "{}", "done"))
            await asyncio.sleep(1.1)
            fake.fail_next("chat.startStream", error="missing_scope")
            await drafts.grow("agent-a", 0, "alice", "Your orders")
            return drafts.showed_tasks("agent-a:0")

    showed = asyncio.run(main())
    in_thread = [c for c in fake.calls if c.args.get("thread_ts") == root and c.ok]
    assert [c.method for c in in_thread] == ["chat.postMessage"]  # the draft, a message: no stream opened
    assert not showed
