"""A thread's queue notice whose waiting mention ends unrun, its channel disconnected (bridge/notices.py, through
the relay): the notice says it will not be answered, however long the thread's "disconnected" notice takes to
post, and whether or not the queue notice itself is still being posted when that turn ends."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

import bridge.notice_words as notice_words
import bridge.notices as notices
from bridge.turns import Job
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_relay import Worker, mention, relaying, until


@pytest.fixture
def poster(monkeypatch: pytest.MonkeyPatch) -> EditingPoster:
    """A poster whose notices are looked at again and edited at once."""
    monkeypatch.setattr(notices, "NOTICE_SPACING", 0.1)
    monkeypatch.setattr(notices, "EDIT_SPACING", 0.05)
    return EditingPoster()


class Disconnected(Worker):
    """Holds the first turn; every later one is taken and ends unbound, its "disconnected" notice taking `post`
    seconds to reach Slack (as turns.TurnWorker._end_unbound does: it never goes to the agents)."""

    post = 1.0

    async def run(self, job: Job) -> str:
        if not self.jobs:
            return await super().run(job)
        self.jobs.append(job)
        await self.store.take_turn(job.turn_id, None)
        await asyncio.sleep(self.post)
        await self.store.finish_turn(job.turn_id, "unbound")
        return "unbound"


def test_a_notice_says_unanswered_when_its_turn_ends_unbound_while_slack_is_slow(
    tmp_path: Path, poster: EditingPoster
) -> None:
    """revBK: the notice was dropped as answered while the "disconnected" notice was posted, and kept promising."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Disconnected, poster) as rig:
            await rig.relay.accept(mention(1, "first"))  # holds the channel until finish()
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(mention(2, "second"))
            await until(lambda: any(thread == "2.000001" for thread, _ in poster.posts))
            await asyncio.sleep(0.2)  # the notice is old enough to be looked at again
            rig.worker.finish()
            await until(lambda: len(rig.worker.jobs) == 2)
            await asyncio.sleep(Disconnected.post + 0.8)
            return [text for _, text in poster.edits]

    assert asyncio.run(main()) == [notice_words.UNBOUND_NOTICE]


def test_a_dm_s_notice_says_our_conversation_was_disconnected_not_this_channel(
    tmp_path: Path, poster: EditingPoster
) -> None:
    """A DM is no channel: its notice said "this channel was disconnected"."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Disconnected, poster) as rig:
            await rig.relay.accept(dataclasses.replace(mention(1, "first"), channel_id="D1"))
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(dataclasses.replace(mention(2, "second"), channel_id="D1"))
            await until(lambda: any(thread == "2.000001" for thread, _ in poster.posts))
            await asyncio.sleep(0.2)
            rig.worker.finish()
            await until(lambda: len(rig.worker.jobs) == 2)
            await asyncio.sleep(Disconnected.post + 0.8)
            return [text for _, text in poster.edits]

    assert asyncio.run(main()) == ["Not answered: our conversation was disconnected from Letta before its turn came."]


class SlowEditingPoster(EditingPoster):
    """chat.postMessage slow a moment: a notice takes a second (0.7 s and a round trip) to post."""

    async def post(self, channel: str, thread_ts: str, part: SimpleNamespace, **_: object) -> str:
        await asyncio.sleep(0.7)
        return await super().post(channel, thread_ts, part)


class Unbound(Disconnected):
    post = 0.1


@pytest.mark.parametrize(
    ("why", "said"),
    [(None, notice_words.UNBOUND_NOTICE), ("addressed", notice_words.EDITED_AWAY_NOTICE),
     ("emptied", notice_words.EMPTIED_NOTICE)],
)
def test_a_mention_ended_while_its_notice_is_posted_is_said_so_once_posted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: notice_words.TakenBack | None, said: str
) -> None:
    """revBK: an end told to the notices while the notice was on its way was lost; the notice kept promising (a
    disconnect), or the store's words were guessed (an edit)."""
    monkeypatch.setattr(notices, "NOTICE_SPACING", 0.1)
    monkeypatch.setattr(notices, "EDIT_SPACING", 0.05)
    poster = SlowEditingPoster()

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Unbound, poster) as rig:
            await rig.relay.accept(mention(1, "first"))  # holds the channel until finish()
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(mention(2, "second"))
            await asyncio.sleep(0.2)  # its queue notice is on its way
            if why is None:  # its channel was disconnected
                rig.worker.finish()
                await until(lambda: len(rig.worker.jobs) == 2)
                await asyncio.sleep(Unbound.post + 0.1)  # ended unbound before the notice is posted
            else:
                await rig.relay.withdraw("T1", "C1", "2.000001", why)
            assert not poster.posts
            await until(lambda: bool(poster.posts))
            rig.worker.finish()
            await asyncio.sleep(0.8)
            return [text for _, text in poster.edits]

    assert asyncio.run(main()) == [said]


def test_a_follow_up_deleted_while_its_threads_first_turn_runs_is_said_unanswered(
    tmp_path: Path, poster: EditingPoster
) -> None:
    """A thread stayed "being taken" for its first turn's whole run, so a follow-up deleted meanwhile kept its
    "Queued" notice until that turn ended, minutes later (revBN): the thread leaves it once its turn goes to the
    agents."""
    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster) as rig:
            await rig.relay.accept(mention(1, "first"))  # runs (gone to the agents) until finish()
            await until(lambda: len(rig.worker.jobs) == 1)
            await rig.relay.accept(mention(2, "second", thread=1))  # waits behind it, in the same thread
            await until(lambda: any(thread == "1.000001" for thread, _ in poster.posts))
            await rig.relay.withdraw("T1", "C1", "2.000001")  # the person deletes it
            await asyncio.sleep(1.5)  # many rounds of the notice's looks; "first" still runs
            edits = [text for _, text in poster.edits]
            rig.worker.finish()
            return edits

    assert asyncio.run(main()) == [notice_words.WITHDRAWN_NOTICE]
