"""Found by second reader revDX: a Stop delivered while the turn's journal write of a send (TrackedJournal.sending) is
under way. The stop's cancel_letta reads the store's sending steps once the write is committed, before the turn's
task has added the step to `running.sending` (both wait on the database; either may resume first: on PostgreSQL they
are two pool connections). The step is then taken for an earlier run's send, cancelled only under the agent's lock
within LOCK_WAIT; the turn's task goes on (its stop check was made before the stop), takes the lock and sends to
Letta. Nothing cancels that run: the cancel waits for the lock the send itself holds, and the task is then
cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bridge.stopping as stopping
from bridge.domain import Target
from bridge.letta.locks import held_by_turn
from bridge.stopping import TrackedJournal, TurnStops
from bridge.store import open_store
from tests.unit.test_stop_cancel import ALICE, TURN
from tests.unit.test_stop_cancel import Letta as CancelRoutes


class Letta(CancelRoutes):
    app_server = False  # a REST server


class PausingStore:
    """The real store; its journal write of a send returns only once a sending_steps read has seen it committed."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.writing = asyncio.Event()
        self.read = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def step_sending(self, turn_id: int, key: str) -> None:
        await self._store.step_sending(turn_id, key)  # committed
        self.writing.set()
        await self.read.wait()  # the database's answer to the write comes back after the stop's read

    async def sending_steps(self, turn_id: int) -> dict[str, str]:
        steps = await self._store.sending_steps(turn_id)
        self.read.set()
        return steps


def test_a_stop_during_the_journal_write_of_a_send_cancels_that_send_at_letta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stopping, "LOCK_WAIT", 0.3)

    async def main() -> tuple[list[str], list[str]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None
            paused = PausingStore(store)
            letta = Letta()
            stops = TurnStops(paused, letta, 0)  # type: ignore[arg-type]
            asked: list[str] = []

            async def turn() -> int:
                async with stops.track(turn_id, "T1", "C1", "1.000001") as running:
                    running.target = Target("agents", (ALICE,))
                    journal = TrackedJournal(paused, turn_id, "otid-1", "T1", "C1", running.sending,  # type: ignore[arg-type]
                                             stopped=running.check)
                    await journal.sending(ALICE.id)  # as bridge_runner.py:135
                    keys = [ALICE.id]
                    async with letta.locks.hold(keys):  # as client.py _one_send
                        with held_by_turn(keys):
                            asked.append(ALICE.id)  # the send reached Letta: alice's run begins
                            await asyncio.sleep(2.0)  # alice's run streams its answer
                    await journal.answered(ALICE.id, [])
                return 0

            task = asyncio.create_task(turn())
            await paused.writing.wait()
            while turn_id not in stops.running:
                await asyncio.sleep(0)
            stops.running[turn_id].task = task
            assert await stops.stop(turn_id, "U1")
            await asyncio.gather(task, return_exceptions=True)
            return asked, letta.cancels
        finally:
            await store.close()

    asked, cancels = asyncio.run(main())
    assert not asked or cancels == [ALICE.id], f"alice was asked {asked} after the stop; Letta cancels: {cancels}"
