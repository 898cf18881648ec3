"""A message of a reply that Slack refuses for what it holds (msg_too_long, invalid_blocks, ...) is replaced by a
plain notice saying so, and the rest of the turn is still posted: before, the refusal failed the whole turn, the
reply's other messages and every later reply were never posted, and the thread was told nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.outbox import TurnOutbox
from bridge.slack.failures import SlackPostError
from bridge.slack.post import SlackPoster
from bridge.stopping import TurnStops
from bridge.store.database_url import open_store
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from tests.fakes.slack import FakeSlack

LONG = "\n\n".join(f"Paragraph {n}: " + "word " * 100 for n in range(12))  # two messages


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


async def flush_turn(tmp_path: Path, fake: FakeSlack, root: str) -> list[tuple[str | None, str]]:
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        turn = Turn("T1", "C1", root, root, "U1", "hi", "Ev1")
        turn_id = await store.accept_turn(turn, "otid-1")
        assert turn_id is not None
        outbox = TurnOutbox(store, turn_id, fresh=True)
        await outbox.add("reply:s1:0", "alice", LONG)
        await outbox.add("reply:s2:0", "bob", "bob's answer")
        poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        stops = TurnStops(store, SimpleNamespace(), 0)  # type: ignore[arg-type]
        flush = TurnFlush(SimpleNamespace(slack_feedback=False), poster, stops, AckFirst())  # type: ignore[arg-type]
        drafts = SimpleNamespace(replace=lambda *_: asyncio.sleep(0))
        await flush.flush(outbox, turn_id, "C1", root, root, False, drafts)  # type: ignore[arg-type]
        assert await outbox.pending() == []
        return await store.posts_of(turn_id)
    finally:
        await store.close()


def test_a_message_slack_refuses_is_said_and_the_rest_still_posted(tmp_path: Path, fake: FakeSlack) -> None:
    """msg_too_long: what Slack answers chat.postMessage for a text it will not take (no longer only truncated)."""
    error = "msg_too_long"
    root = fake.add_message("C1", "hi")
    fake.fail_next("chat.postMessage", error=error)
    posts = asyncio.run(flush_turn(tmp_path, fake, root))
    texts = [m["text"] for m in fake.messages("C1", root) if m.get("bot_id")]
    assert len(texts) == 3 and len(posts) == 3, texts
    assert f"Slack refused a message of alice's reply ({error})" in texts[0], texts[0]
    assert texts[1].startswith("Paragraph") and texts[2] == "bob's answer"


def test_a_channel_the_bot_cannot_post_in_still_fails_the_turn(tmp_path: Path, fake: FakeSlack) -> None:
    root = fake.add_message("C1", "hi")
    fake.fail_next("chat.postMessage", error="not_in_channel", times=5)
    with pytest.raises(SlackPostError):
        asyncio.run(flush_turn(tmp_path, fake, root))
