"""bridge/turn_runs.py: a turn whose post failed because Slack was down (a 5xx, the connection, past the poster's
own tries) is run again, resumed, once Slack answers, in its place and without counting as a failed run; a stop
of the bridge meanwhile leaves it for the next start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import bridge.turn_runs as turn_runs
from bridge.slack.failures import SlackAnswer, SlackPostError
from bridge.store.base import Store
from bridge.turns import Job
from tests.unit.test_relay import Worker, mention, relaying, until, until_done


class SlackDown(Worker):
    """Its runs of "first" fail as a post Slack did not answer, `outages` times; Slack answers no look while
    `down` is set."""

    def __init__(self, store: Store, outages: int) -> None:
        super().__init__(store)
        self.outages = outages
        self.down = asyncio.Event()
        self.looks = 0
        self.finish()

    async def slack_answers(self, team_id: str) -> SlackAnswer:
        self.looks += 1
        return "down" if self.down.is_set() else "answers"

    async def run(self, job: Job) -> str:
        if job.turn.text == "first" and self.outages > 0:
            self.jobs.append(job)
            self.outages -= 1
            raise SlackPostError("chat.postMessage", "http_503", unknown=True)
        return await super().run(job)


def test_a_turn_whose_posts_slack_did_not_answer_runs_again_once_slack_answers_however_many_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack outage past the poster's two minutes ended the turn failed (⚠️, the reply kept only in the
    outbox). Such a run is no failed run: it is made again as resumed once Slack answers, as often as it takes,
    before the channel's next turn; the wait is said once when it starts and once when it ends."""
    monkeypatch.setattr(turn_runs, "CRASH_PAUSES", (0.02, 0.02))
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.02, raising=False)

    async def main() -> tuple[list[tuple[str, bool]], int]:
        async with relaying(tmp_path / "b.db", lambda store: SlackDown(store, outages=5)) as rig:
            worker = rig.worker
            assert isinstance(worker, SlackDown)
            worker.down.set()
            await rig.relay.accept(mention(1, "first"))
            await rig.relay.accept(mention(2, "second"))
            await asyncio.wait_for(until(lambda: worker.looks >= 5), 5)
            worker.down.clear()
            await asyncio.wait_for(until_done(rig.store), 5)
            return [(job.turn.text, job.resumed) for job in worker.jobs], await rig.store.count_unfinished()

    with caplog.at_level(logging.INFO, logger="bridge.relay"):
        runs, unfinished = asyncio.run(main())
    assert runs == [("first", False)] + [("first", True)] * 5 + [("second", False)], runs
    assert unfinished == 0
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.relay"]
    assert not [m for m in said if "left for the next start" in m], said
    assert len([m for m in said if "Slack does not answer" in m]) == 1, said
    assert len([m for m in said if "Slack answers again" in m]) == 1, said


def test_a_turn_waiting_for_slack_is_left_for_the_next_start_when_the_bridge_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while a turn waits for Slack: the stop does not wait out its grace for it, and the turn stays
    unfinished in the store, for the next start to resume as any turn in flight."""
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.02, raising=False)

    async def main() -> tuple[float, int]:
        async with relaying(tmp_path / "b.db", lambda store: SlackDown(store, outages=1)) as rig:
            worker = rig.worker
            assert isinstance(worker, SlackDown)
            worker.down.set()
            await rig.relay.accept(mention(1, "first"))
            await asyncio.wait_for(until(lambda: worker.looks >= 2), 5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await rig.relay.stop(30.0)
            return loop.time() - started, await rig.store.count_unfinished()

    took, unfinished = asyncio.run(main())
    assert took < 5.0, took
    assert unfinished == 1
