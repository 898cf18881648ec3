"""How a turn ends (TurnWorker._run_shown) when a stop lands as the agents finish, before the turn's last flush:
it ends as stopped, in the thread's words, and takes its working signs back. Everything around the worker is a
double; the store is real."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.domain import Turn
from bridge.logs import Redactor
from bridge.metrics import UNMETERED
from bridge.outbox import TurnOutbox
from bridge.stopping import RunningTurn
from bridge.store.base import open_store
from bridge.store.locks import AckFirst
from bridge.turns import NOTHING_SAID, Job, TurnWorker


class Recorder:
    """Any async call, recorded; `set` (a session's status) answers False: no session here."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **_: Any) -> Any:
            self.calls.append((name, *args))
            return False if name == "set" else None

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
        await store.set_turn_status(turn_id, "running")
        job = Job(turn, turn_id, "otid-1")
        worker = object.__new__(TurnWorker)  # only what ending a turn uses
        poster, presence = Recorder(), Recorder()
        worker._settings = SimpleNamespace(  # type: ignore[assignment]
            turn_deadline_seconds=30, approval_timeout_seconds=30, slack_done_reaction="white_check_mark",
            slack_stopped_reaction="black_square_for_stop", slack_failed_reaction="warning", slack_feedback=False,
        )
        worker._store, worker._poster, worker.sessions, worker.desk = store, poster, Recorder(), None  # type: ignore[assignment]
        worker.ack_first, worker._redactor, worker.metrics = AckFirst(), Redactor(()), UNMETERED
        worker._outboxes = {turn_id: TurnOutbox(store, turn_id, fresh=True)}
        worker.stops = SimpleNamespace(cancel_letta=lambda running: asyncio.sleep(0))  # type: ignore[assignment]
        running = RunningTurn(turn_id, "T1", "C1", "1.000001")

        async def converse(*_: Any) -> int:
            # The agents said nothing (a run Stop cancelled ends so) while Stop was pressed: the stop is
            # recorded and the turn marked, its task not cancelled yet.
            await store.stop_turns("T1", "C1", "1.000001", "U1")
            running.stopped_by = "U1"
            await worker._owe(job, "notice:nothing", NOTHING_SAID)
            return 0

        worker._converse = converse  # type: ignore[method-assign]
        drafts = SimpleNamespace(abandon=lambda *_: asyncio.sleep(0, False))
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
