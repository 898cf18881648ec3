"""Drafts an earlier run of a turn left in Slack (bridge/drafts.py), taken over by the run that resumes the turn,
against the fake Slack and each store backend. Before, the resumed run opened a second draft for a reply that grew
again and never closed the first: the thread kept a stream never stopped, half the reply, beside the reply."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.drafts import TurnDrafts
from bridge.slack.live import LiveMessages
from bridge.slack.post import SlackPoster
from bridge.store import open_store
from bridge.store.base import Store
from tests.fakes.slack import FakeSlack

Body = Callable[[Store, FakeSlack, str], Awaitable[None]]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")
        yield slack


def drafts(store: Store, fake: FakeSlack, turn: Turn, turn_id: int, resumed: bool) -> TurnDrafts:
    """A run's drafts as turns.py makes them: a new LiveMessages per run, as after a restart."""
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    return TurnDrafts(store, SlackPoster(client), LiveMessages(client), turn, turn_id, 0.0, resumed)


def run(database_url: str, fake: FakeSlack, body: Body) -> None:
    async def main() -> None:
        store = open_store(database_url)
        await store.open()
        try:
            await body(store, fake, fake.add_message("C1", "hi"))
        finally:
            await store.close()

    asyncio.run(main())


async def accepted(store: Store, fake: FakeSlack, root: str, ts: str, event: str) -> tuple[Turn, int]:
    turn = Turn(fake.team_id, "C1", ts, root, "U0123ABCD", "hi", event)
    turn_id = await store.accept_turn(turn, f"otid-{event}")
    assert turn_id is not None
    return turn, turn_id


def shown(fake: FakeSlack, root: str) -> list[tuple[str | None, str]]:
    return [(m.get("username"), m["text"]) for m in fake.messages("C1", root) if m.get("bot_id")]


async def grown_after_a_crash(store: Store, fake: FakeSlack, root: str) -> tuple[TurnDrafts, str]:
    """A reply streamed by a process that then died, grown again by the turn resumed in its earlier stream: the
    resumed turn's drafts, and the stream's ts."""
    turn, turn_id = await accepted(store, fake, root, root, "Ev1")
    await drafts(store, fake, turn, turn_id, resumed=False).grow("agent-a", 0, "alice", "The deploy")
    [(_, earlier)] = fake.open_streams()  # the process dies here
    again = drafts(store, fake, turn, turn_id, resumed=True)
    await again.grow("agent-a", 0, "alice", "The deploy went")
    return again, earlier


def test_a_reply_that_grows_again_after_a_restart_grows_in_its_earlier_draft(
    database_url: str, fake: FakeSlack
) -> None:
    async def body(store: Store, fake: FakeSlack, root: str) -> None:
        turn, turn_id = await accepted(store, fake, root, root, "Ev1")
        await drafts(store, fake, turn, turn_id, resumed=False).grow("agent-a", 0, "alice", "The deploy")
        [(_, earlier)] = fake.open_streams()  # the process dies here: the stream is never stopped

        again = drafts(store, fake, turn, turn_id, resumed=True)
        await again.grow("agent-a", 0, "alice", "The deploy went")  # its send re-attached: the reply grows anew
        await asyncio.sleep(1.3)  # chat.update's spacing (live.UPDATE_SPACING)
        await again.grow("agent-a", 0, "alice", "The deploy went fine.")
        assert await again.replace("agent-a:0", "The deploy went fine.") == earlier
        assert len(fake.calls_to("chat.startStream")) == 1, "the resumed run opened a second draft"
        assert shown(fake, root) == [("alice", "The deploy went fine.")]
        assert not fake.open_streams()

    run(database_url, fake, body)


def test_a_resumed_reply_grows_visibly_in_its_earlier_stream(database_url: str, fake: FakeSlack) -> None:
    """The earlier run's stream, stopped and taken over, grows by chat.update: its words are its blocks, which an
    edit of `text` alone keeps, so the draft stayed frozen at what the dead process streamed."""

    async def body(store: Store, fake: FakeSlack, root: str) -> None:
        again, earlier = await grown_after_a_crash(store, fake, root)
        await asyncio.sleep(1.3)  # live.UPDATE_SPACING
        await again.grow("agent-a", 0, "alice", "The deploy went fine, all 12 hosts are green")
        assert "all 12 hosts" in fake.shown("C1", earlier), fake.shown("C1", earlier)

    run(database_url, fake, body)


def test_an_earlier_draft_no_reply_replaces_is_closed_and_another_turns_is_left_alone(
    database_url: str, fake: FakeSlack
) -> None:
    async def body(store: Store, fake: FakeSlack, root: str) -> None:
        turn, turn_id = await accepted(store, fake, root, root, "Ev1")
        other, other_id = await accepted(store, fake, root, fake.add_message("C1", "and you?", thread_ts=root), "Ev2")
        await drafts(store, fake, turn, turn_id, resumed=False).grow("agent-a", 0, "alice", "The deploy")
        [(_, earlier)] = fake.open_streams()
        await drafts(store, fake, other, other_id, resumed=False).grow("agent-b", 0, "bob", "Still writing")
        running = next(key for key in fake.open_streams() if key[1] != earlier)  # another turn, still running
        touched = len(fake.calls)

        # Resumed, the send answered nothing this time (a failure is said in the thread): the turn ends.
        await drafts(store, fake, turn, turn_id, resumed=True).abandon()
        assert fake.open_streams() == [running], "the earlier run's draft was left streaming"
        assert dict(shown(fake, root))["alice"] == "The deploy _(cut off)_"
        assert not [c for c in fake.calls[touched:] if c.args.get("ts") == running[1]], "another turn's draft"

    run(database_url, fake, body)


def test_a_resumed_reply_that_grew_in_its_earlier_stream_shows_the_finished_reply(
    database_url: str, fake: FakeSlack
) -> None:
    """A turn resumed after a crash grows its reply in the earlier run's stream (taken over: its words are its
    blocks). The finished reply is then written over it: the message must show the finished reply, not the
    last draft that was grown (an edit of `text` alone keeps the blocks). Found by a review (revAY)."""

    async def body(store: Store, fake: FakeSlack, root: str) -> None:
        again, earlier = await grown_after_a_crash(store, fake, root)
        final = "The deploy went fine, all 12 hosts are green."
        assert await again.replace("agent-a:0", final) == earlier
        assert fake.shown("C1", earlier) == final, fake.shown("C1", earlier)

    run(database_url, fake, body)


def test_a_resumed_draft_cut_off_says_so(database_url: str, fake: FakeSlack) -> None:
    """The same taken-over stream, its turn then ending without the reply (deadline, failure): the draft is
    marked cut off; the edit of `text` alone leaves the blocks, so the mark never shows."""

    async def body(store: Store, fake: FakeSlack, root: str) -> None:
        again, earlier = await grown_after_a_crash(store, fake, root)
        await again.abandon()
        assert "cut off" in fake.shown("C1", earlier), fake.shown("C1", earlier)

    run(database_url, fake, body)
