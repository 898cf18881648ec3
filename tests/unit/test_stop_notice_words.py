"""Two turns of one thread stopped by the same person: both "Stopped by" notices are in the same words. The bridge
looks for a notice in the thread when it may have landed unrecorded (the end of a stop after a crash, a post whose
outcome is unknown); it must never take the earlier turn's notice for the later one's, which would never be posted.
The store is a real SQLite file, Slack the fake, the poster the bridge's own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.approval_desk import ApprovalDesk
from bridge.domain import Turn
from bridge.logs import Redactor
from bridge.outbox import TurnOutbox
from bridge.slack.post import SlackPoster
from bridge.stop_end import StopEnd
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import Store, open_store
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from bridge.turn_shown import TurnShown
from bridge.turns import Job, TurnWorker
from tests.fakes.slack import FakeSlack
from tests.unit.test_stop_cancel import Letta
from tests.unit.test_stop_end import Recorder

NOTICE = "Stopped by <@U9>."
SETTINGS = dict(
    slack_working_reaction="eyes", slack_stopped_reaction="black_square_for_stop", slack_done_reaction="done",
    slack_failed_reaction="warning", slack_feedback=False, approval_timeout_seconds=30, turn_deadline_seconds=30,
    slack_approve_by="asker", slack_approve_users=(), slack_agents={},
)


@pytest.fixture
def slack() -> Any:
    with FakeSlack() as fake:
        fake.add_channel("C1", "general")
        yield fake


def notices(slack: FakeSlack, root: str) -> list[str]:
    return [m["ts"] for m in slack.messages("C1", root) if m.get("bot_id") and m.get("text") == NOTICE]


async def accepted(store: Store, slack: FakeSlack, root: str | None, otid: str) -> tuple[Turn, int]:
    """A mention in C1 (a new thread when `root` is None) accepted as a turn."""
    ts = slack.add_message("C1", "<@UBOT> go on", thread_ts=root)
    turn = Turn("T1", "C1", ts, root or ts, "U1", "go on", f"Ev-{otid}")
    turn_id = await store.accept_turn(turn, otid)
    assert turn_id is not None
    return turn, turn_id


def test_the_end_of_a_stop_after_a_crash_does_not_take_an_earlier_turns_notice_for_its_own(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """Turn A was killed mid-run and stopped; a new mention (B) came before the process taking A over said so.
    Then B was killed mid-run and stopped too. The end of B's stop looked for its notice from B's mention on,
    found A's (same words, posted after B's mention) and took it for its own: B's stop was never said."""

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            settings = SimpleNamespace(**SETTINGS)
            poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            stops = TurnStops(store, Letta(), 0)  # type: ignore[arg-type]
            end = StopEnd(store, stops, poster, Recorder(), ApprovalDesk(store, settings), settings)  # type: ignore[arg-type]
            a, a_id = await accepted(store, slack, None, "otid-a")
            assert await store.take_turn(a_id)
            assert await store.stop_turns("T1", "C1", a.thread_ts, "U9") == [(a_id, False)]  # its process is dead
            b, b_id = await accepted(store, slack, a.thread_ts, "otid-b")  # after the stop: not stopped by it
            await end.finish(a, a_id, "U9", None)
            assert await store.take_turn(b_id)
            assert await store.stop_turns("T1", "C1", a.thread_ts, "U9") == [(b_id, False)]
            await end.finish(b, b_id, "U9", None)
            assert len(notices(slack, a.thread_ts)) == 2, "B's stop was taken as said by A's notice"
            await end.finish(b, b_id, "U9", None)  # a second end of B's stop (its first died after posting)
            assert len(notices(slack, a.thread_ts)) == 2, "B's stop was said twice"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_stop_notice_whose_post_failed_unseen_is_posted_even_if_an_earlier_turn_said_the_same(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """A thread whose earlier turn was stopped by U9; its next turn is stopped by U9 too, and Slack answers the
    notice's post with a 500 without posting it. The poster read the whole thread for it, found the earlier
    turn's notice and took it for this one: the stop was never said."""

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            settings = SimpleNamespace(**SETTINGS)
            poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            a, a_id = await accepted(store, slack, None, "otid-a")
            await stop_live(store, poster, settings, a, a_id, False, slack)
            b, b_id = await accepted(store, slack, a.thread_ts, "otid-b")
            await stop_live(store, poster, settings, b, b_id, True, slack)
            assert len(notices(slack, a.thread_ts)) == 2, "the second stop was taken as said by the first's notice"
        finally:
            await store.close()

    asyncio.run(main())


async def stop_live(
    store: Store, poster: SlackPoster, settings: Any, turn: Turn, turn_id: int, refuse: bool, slack: FakeSlack
) -> None:
    """Run `turn` in a worker (only what ending a turn uses) until U9 stops it; its notice's post refused with a
    500 Slack did not post when `refuse`."""
    assert await store.take_turn(turn_id)
    job = Job(turn, turn_id, f"otid-{turn_id}")
    worker = object.__new__(TurnWorker)
    worker._settings, worker._store, worker._poster = settings, store, poster
    worker.sessions, worker.desk = Recorder(), ApprovalDesk(store, settings)  # type: ignore[assignment]
    worker.ack_first, worker._redactor = AckFirst(), Redactor(())
    worker._outboxes = {turn_id: TurnOutbox(store, turn_id, fresh=True)}
    worker.stops = TurnStops(store, Letta(), 0)  # type: ignore[arg-type]
    worker._posting = TurnFlush(settings, poster, worker.stops, worker.ack_first)
    worker._shown = TurnShown(settings, store, poster, worker.sessions)
    worker._directory = SimpleNamespace(channel_name_soon=lambda _channel: None)  # type: ignore[assignment]
    running = RunningTurn(turn_id, "T1", "C1", turn.thread_ts)

    async def converse(*_: Any) -> int:
        await store.stop_turns("T1", "C1", turn.thread_ts, "U9")
        running.stopped_by = "U9"
        if refuse:
            slack.fail_next("chat.postMessage", error="internal_error", status=500)
        running.check()
        return 0

    worker._converse = converse  # type: ignore[method-assign]
    drafts = SimpleNamespace(abandon=lambda *_, **__: asyncio.sleep(0, False))
    binding = SimpleNamespace(target=SimpleNamespace(description="the group"))
    status = await worker._run_shown(job, binding, drafts, running, Recorder())  # type: ignore[arg-type]
    assert status == "stopped"
