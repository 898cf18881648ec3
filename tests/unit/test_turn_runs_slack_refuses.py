"""bridge/turn_runs.py with a Slack that answers but will not take the turn's posts: a token Slack refuses ends the
turn failed (second reader secKO of c239ae3: a resumed turn whose token was revoked ran again about every two
minutes, for ever, its channel's later turns behind it), and a partial outage (auth.test fine, chat.postMessage
failing) runs the turn again only after a look's wait, said once."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import bridge.turn_runs as turn_runs
from bridge.slack.failures import SlackAnswer, SlackPostError, answers
from bridge.slack.post import Part, SlackPoster
from bridge.store.base import Store
from bridge.turns import Job
from tests.fakes.slack import FakeSlack
from tests.unit.test_relay import Worker, mention, relaying, until, until_done


class Posting(Worker):
    """Each run posts (`post`) and ends the turn as turns.TurnWorker._run_shown does: a post Slack did not take
    while down is raised (to be run again) unless the token was refused, any other failure ends it failed."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.statuses: list[str] = []
        self.times: list[float] = []
        self.finish()

    async def post(self, job: Job) -> None:
        raise NotImplementedError

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        self.times.append(asyncio.get_running_loop().time())
        status = "done"
        try:
            await self.post(job)
        except SlackPostError as exc:
            if exc.unavailable and not job.last_try:
                raise
            status = "failed"
        await self.store.finish_turn(job.turn_id, status)
        self.statuses.append(status)
        return status


class Resumed(Posting):
    """Posts what a resumed turn owes after reading the thread."""

    def __init__(self, store: Store, fake: FakeSlack) -> None:
        super().__init__(store)
        self.poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        self.root = fake.add_message("C1", "hi")

    async def slack_answers(self, team_id: str) -> SlackAnswer:
        return await answers(self.poster.client)

    async def post(self, job: Job) -> None:
        await self.poster.post("C1", self.root, Part("alice says hi", None), check_first=True)


def test_a_resumed_turn_whose_token_slack_refuses_ends_failed_instead_of_running_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auth.test refused (token_revoked): the bot id never learnt, the thread's check could not tell whether the
    owed reply landed, and the turn was taken for one Slack did not answer, run again and again. A refused token
    is no outage: the turn ends failed at its first run, as docs/guarantees.md says."""
    monkeypatch.setattr("bridge.slack.post.OUTCOME_WAITS", (0.01,) * 8)
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.02)

    async def main() -> tuple[int, list[str], int]:
        with FakeSlack() as fake:
            fake.add_channel("C1", "general")
            fake.fail_next("auth.test", error="token_revoked", times=1000)
            async with relaying(tmp_path / "b.db", lambda store: Resumed(store, fake)) as rig:
                worker = rig.worker
                assert isinstance(worker, Resumed)
                await rig.relay.accept(mention(1, "first"))
                await asyncio.wait_for(until_done(rig.store), 5)
                await asyncio.sleep(0.1)  # a run made again would come within this
                return len(worker.jobs), worker.statuses, await rig.store.count_unfinished()

    runs, statuses, unfinished = asyncio.run(main())
    assert (runs, statuses, unfinished) == (1, ["failed"], 0)


def test_answers_tells_slack_down_from_a_refused_token() -> None:
    """auth.test's token_revoked or invalid_auth counted as 'Slack answers'; it is a refusal of the token, told
    apart from Slack answering and from Slack being down."""

    async def ask(fake: FakeSlack) -> SlackAnswer:
        return await answers(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))

    said: dict[str, SlackAnswer] = {}
    with FakeSlack() as fake:
        said["fine"] = asyncio.run(ask(fake))
        for error in ("token_revoked", "invalid_auth", "account_inactive", "not_authed"):
            fake.fail_next("auth.test", error=error)
            said[error] = asyncio.run(ask(fake))
        fake.fail_next("auth.test", error="internal_error", status=503)
        said["503"] = asyncio.run(ask(fake))
    assert said == {
        "fine": "answers", "token_revoked": "refuses", "invalid_auth": "refuses", "account_inactive": "refuses",
        "not_authed": "refuses", "503": "down",
    }


class Outage(Posting):
    """Its posts fail as ones Slack did not take, `outages` times; auth.test says `answer`."""

    def __init__(self, store: Store, outages: int, answer: SlackAnswer) -> None:
        super().__init__(store)
        self.outages = outages
        self.answer = answer

    async def slack_answers(self, team_id: str) -> SlackAnswer:
        return self.answer

    async def post(self, job: Job) -> None:
        if self.outages > 0:
            self.outages -= 1
            raise SlackPostError("chat.postMessage", "http_503", unknown=True)


async def first_mention(rig: Any) -> Outage:
    """The rig's Outage worker, once the channel's first mention is accepted."""
    worker = rig.worker
    assert isinstance(worker, Outage)
    await rig.relay.accept(mention(1, "first"))
    return worker


def test_a_turn_waiting_for_slack_ends_failed_when_slack_refuses_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack down, then the token revoked meanwhile: the turn runs once more, told the token is refused, and
    ends failed however its post fails, rather than waiting for Slack again."""
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.02)

    async def main() -> tuple[list[bool], list[str], int]:
        async with relaying(tmp_path / "b.db", lambda store: Outage(store, 1000, "refuses")) as rig:
            worker = await first_mention(rig)
            await asyncio.wait_for(until_done(rig.store), 5)
            return [job.last_try for job in worker.jobs], worker.statuses, await rig.store.count_unfinished()

    refused, statuses, unfinished = asyncio.run(main())
    assert (refused, statuses, unfinished) == ([False, True], ["failed"], 0)


def test_a_turn_slack_answers_for_but_takes_no_posts_from_runs_again_only_after_a_wait_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A partial outage (auth.test fine, chat.postMessage 5xx past the poster's tries) ran the turn again at
    once, each cycle logging its warning: now each run made again waits SLACK_LOOK_EVERY, and the log says so
    once for the turn."""
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.2)

    async def main() -> tuple[list[float], int]:
        async with relaying(tmp_path / "b.db", lambda store: Outage(store, 3, "answers")) as rig:
            worker = rig.worker
            assert isinstance(worker, Outage)
            await rig.relay.accept(mention(1, "first"))
            await asyncio.wait_for(until(lambda: len(worker.statuses) == 1), 5)
            return worker.times, await rig.store.count_unfinished()

    with caplog.at_level(logging.INFO, logger="bridge.relay"):
        times, unfinished = asyncio.run(main())
    assert len(times) == 4 and unfinished == 0, (times, unfinished)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.19, gaps
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.relay"]
    assert len([m for m in said if "Slack answers but did not take" in m]) == 1, said
    assert len([m for m in said if "turn not posted while Slack is down" in m]) == 1, said


def test_a_post_slack_keeps_failing_while_it_answers_ends_the_turn_failed_and_frees_its_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auth.test fine each time, chat.postMessage failing on the turn's message for good (Slack failing on that
    message, not an outage): after PARTIAL_RUNS runs made again the last ends the turn failed, and the channel's
    next turn runs; before, it was run again every cycle for ever, the channel's later turns behind it."""
    monkeypatch.setattr(turn_runs, "SLACK_LOOK_EVERY", 0.02)

    async def main() -> tuple[list[bool], list[str], int]:
        async with relaying(tmp_path / "b.db", lambda store: Outage(store, 1000, "answers")) as rig:
            worker = await first_mention(rig)
            await asyncio.wait_for(until(lambda: len(worker.statuses) == 1), 5)
            worker.outages = 0
            await rig.relay.accept(mention(2, "second"))
            await asyncio.wait_for(until(lambda: len(worker.statuses) == 2), 5)
            return [job.last_try for job in worker.jobs], worker.statuses, await rig.store.count_unfinished()

    last, statuses, unfinished = asyncio.run(main())
    assert last == [False, False, False, True, False], last
    assert statuses == ["failed", "done"] and unfinished == 0, statuses
