"""A thread's queue notice whose waiting mention ends unrun, its channel disconnected (bridge/notices.py, through
the relay): the notice says it will not be answered, however long the thread's "disconnected" notice takes to
post, and whether or not the queue notice itself is still being posted when that turn ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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

    assert asyncio.run(main()) == [notices.UNBOUND_NOTICE]
