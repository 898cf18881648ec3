"""How a turn ends (TurnWorker._run_shown) when a stop lands as the agents finish, before the turn's last flush
(it ends as stopped, in the thread's words, and takes its working signs back), when a stop lands before there is
a task to cancel (Letta is not asked), and when a person takes longer to decide a tool call than the turn's
deadline (the wait does not count). Everything around the worker is a double; the store is real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.approval_desk import ApprovalDesk
from bridge.domain import ApprovalRequest, ToolCall, Turn
from bridge.logs import Redactor
from bridge.outbox import TurnOutbox
from bridge.slack.post import Author, Part
from bridge.stopping import RunningTurn, TurnStops
from bridge.store.database_url import open_store
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from bridge.turn_shown import TurnShown
from bridge.turn_words import NOTHING_SAID
from bridge.turns import Job, TurnWorker


class Recorder:
    """Any async call, recorded; `set` (a session's status) answers False: no session here; `post` a ts."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **_: Any) -> Any:
            self.calls.append((name, *args))
            return False if name == "set" else "9.000001" if name == "post" else None

        return call


def test_a_stop_recorded_before_the_last_flush_ends_the_turn_as_stopped(tmp_path: Path) -> None:
    """Before, the flush's TurnStopped escaped: the turn was logged as crashed, with no "Stopped by" message and
    its working reaction left up."""

    async def main() -> tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1")
        turn_id = await store.accept_turn(turn, "otid-1")
        assert turn_id is not None
        await store.take_turn(turn_id)
        job = Job(turn, turn_id, "otid-1")
        worker = object.__new__(TurnWorker)  # only what ending a turn uses
        poster, presence = Recorder(), Recorder()
        worker._settings = SimpleNamespace(  # type: ignore[assignment]
            turn_deadline_seconds=30, approval_timeout_seconds=30, slack_done_reaction="white_check_mark",
            slack_stopped_reaction="black_square_for_stop", slack_failed_reaction="warning", slack_feedback=False,
        )
        worker._store, worker._poster, worker.sessions, worker.desk = store, poster, Recorder(), None  # type: ignore[assignment]
        worker.ack_first, worker._redactor = AckFirst(), Redactor(())
        worker._outboxes = {turn_id: TurnOutbox(store, turn_id, fresh=True)}
        worker.stops = TurnStops(store, SimpleNamespace(), 0)  # type: ignore[arg-type]  # no run to cancel
        worker._posting = TurnFlush(worker._settings, worker._poster, worker.stops, worker.ack_first)
        worker._shown = TurnShown(worker._settings, store, poster, worker.sessions)
        running = RunningTurn(turn_id, "T1", "C1", "1.000001")

        async def converse(*_: Any) -> int:
            # The agents said nothing (a run Stop cancelled ends so) while Stop was pressed: the stop is
            # recorded and the turn marked, its task not cancelled yet.
            await store.stop_turns("T1", "C1", "1.000001", "U1")
            running.stopped_by = "U1"
            await worker._owe(job, "notice:nothing", NOTHING_SAID)
            return 0

        worker._converse = converse  # type: ignore[method-assign]
        drafts = SimpleNamespace(abandon=lambda *_, **__: asyncio.sleep(0, False))
        binding = SimpleNamespace(target=SimpleNamespace(description="the group"))
        try:
            status = await worker._run_shown(job, binding, drafts, running, presence)  # type: ignore[arg-type]
            return status, poster.calls, presence.calls
        finally:
            await store.close()

    status, posted, signs = asyncio.run(main())
    assert status == "stopped"
    assert [call[0] for call in posted] == ["post", "react"]
    assert "Stopped by" in posted[0][3].text and "<@U1>" in posted[0][3].text
    assert posted[1][1:] == ("C1", "1.000001", "black_square_for_stop")
    assert signs == [("end",)]


class Poster(Recorder):
    client = SimpleNamespace(chat_update=lambda **_: asyncio.sleep(0))

    def author(self, _name: str) -> Author:
        return Author()

    def shown_name(self, name: str) -> str:
        return name

    def parts(self, _agent: Any, text: str) -> list[Any]:
        return [Part(text, None)]


def settings(**over: Any) -> SimpleNamespace:
    base = dict(
        turn_deadline_seconds=30, approval_timeout_seconds=30, turn_stop_poll_seconds=0.05,
        slack_done_reaction="white_check_mark", slack_stopped_reaction="black_square_for_stop",
        slack_failed_reaction="warning", slack_feedback=False, slack_approve_by="asker", slack_approve_users=(),
        slack_working_reaction="eyes", slack_working_after_seconds=100, slack_live_edit_seconds=1,
        shows_reasoning=lambda _c: False, slack_agents={},
    )
    base.update(over)
    return SimpleNamespace(**base)


async def worker_for(tmp_path: Path, s: SimpleNamespace) -> tuple[TurnWorker, Any, Job, Poster]:
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1")
    turn_id = await store.accept_turn(turn, "otid-1")
    assert turn_id is not None
    job = Job(turn, turn_id, "otid-1")
    worker = object.__new__(TurnWorker)
    poster = Poster()
    worker._settings = s  # type: ignore[assignment]
    worker._store, worker._poster, worker.sessions = store, poster, Recorder()  # type: ignore[assignment]
    worker.desk = ApprovalDesk(store, s)  # type: ignore[arg-type]
    worker.ack_first, worker._redactor = AckFirst(), Redactor(())
    worker._outboxes = {turn_id: TurnOutbox(store, turn_id, fresh=True)}
    worker._shown = TurnShown(s, store, poster, worker.sessions)  # type: ignore[arg-type]
    worker.stops = TurnStops(store, SimpleNamespace(), 0)  # type: ignore[arg-type]
    worker._posting = TurnFlush(worker._settings, worker._poster, worker.stops, worker.ack_first)
    return worker, store, job, poster


def test_an_approval_wait_longer_than_the_turn_deadline_does_not_end_the_turn(tmp_path: Path) -> None:
    """docs/approvals.md: the wait does not count against TURN_DEADLINE_SECONDS. The deadline is only moved on
    after the wait, so it fires during it, and the `reschedule` in decide's finally raises RuntimeError on the
    expiring Timeout: the turn ends as 'crashed', its card still live."""

    async def main() -> tuple[str, list[str], Any]:
        worker, store, job, poster = await worker_for(tmp_path, settings(turn_deadline_seconds=0.3))
        await store.take_turn(job.turn_id)
        request = ApprovalRequest("finn", "agent-1", "step-1", (ToolCall("call-1", "shout", "{}"),))

        async def converse(_job: Any, _b: Any, _d: Any, _r: Any, approvals: Any) -> int:
            async def approve_later() -> None:
                await asyncio.sleep(0.6)
                row = (await worker.desk.store.for_step(job.turn_id, "step-1"))[0]
                assert await worker.desk.store.decide(row.id, "U1", True, "")
                worker.desk.wake(row.id)

            approver = asyncio.create_task(approve_later())
            decisions = await approvals.decide(request)
            await approver
            assert decisions[0].approve
            return 0

        worker._converse = converse  # type: ignore[method-assign]
        drafts = SimpleNamespace(abandon=lambda *_, **__: asyncio.sleep(0, False))
        binding = SimpleNamespace(target=SimpleNamespace(description="the group"))
        async with worker.stops.track(job.turn_id, "T1", "C1", "1.000001") as running:
            status = await worker._run_shown(job, binding, drafts, running, Recorder())  # type: ignore[arg-type]
        texts = [c[3].text for c in poster.calls if c[0] == "post"]
        row = (await worker.desk.store.for_step(job.turn_id, "step-1"))[0]
        await store.close()
        return status, texts, row

    status, texts, row = asyncio.run(main())
    assert status == "done", (status, texts, row)


def test_a_stop_delivered_before_the_turn_task_exists_keeps_letta_from_being_asked(tmp_path: Path) -> None:
    """TurnStops.stop sets stopped_by and cancels running.task, which is None until _run_shown creates it; nothing
    checks stopped_by before the Letta send (the watcher sees stopped_by set and does nothing)."""

    async def main() -> tuple[str, list[str]]:
        worker, store, job, _poster = await worker_for(tmp_path, settings())
        await store.take_turn(job.turn_id)
        asked: list[str] = []

        class Sessions(Recorder):
            async def set(self, *_: Any, **__: Any) -> bool:  # Slack's setStatus round trip: Stop lands in it
                for turn_id, _waiting in await store.stop_turns("T1", "C1", "1.000001", "U1"):
                    await worker.stops.stop(turn_id, "U1")
                return False

        worker.sessions = Sessions()  # type: ignore[assignment]
        worker._shown = TurnShown(worker._settings, store, worker._poster, worker.sessions)

        async def converse(*_: Any) -> int:
            asked.append("letta asked")  # the runner's first send
            return 0

        worker._converse = converse  # type: ignore[method-assign]
        drafts = SimpleNamespace(abandon=lambda *_, **__: asyncio.sleep(0, False))
        binding = SimpleNamespace(target=SimpleNamespace(description="the group", agents=()))
        async with worker.stops.track(job.turn_id, "T1", "C1", "1.000001") as running:
            status = await worker._run(job, binding, drafts, running)  # type: ignore[arg-type]
        await store.close()
        return status, asked

    status, asked = asyncio.run(main())
    assert asked == [] and status == "stopped", (status, asked)
