"""A second Stop on a thread whose turn is already being stopped (`stopping`: its Letta runs still being
cancelled, or its process gone until the takeover ends the stop). The work is stopped already; someone else
pressing Stop must not be told they may not stop it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain import Turn
from bridge.slack.listeners.sessions import stop_answer
from bridge.stop_request import Stopping
from bridge.store import open_store

ASKER, STRANGER = "U0ASKER01", "U0STRANGE"
TURN = Turn("T1", "C1", "1.000001", "1.000001", ASKER, "a long question", "Ev1")


class NotHere:
    async def stop(self, turn_id: int, by: str) -> bool:
        return False  # its process is gone (or the cancel is under way): the turn stays `stopping`


def test_a_stop_of_a_turn_already_stopping_is_not_refused(tmp_path: Path) -> None:
    async def main() -> tuple[str, str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None
            assert await store.take_turn(turn_id) is not None  # running
            stopping = Stopping(store, NotHere())

            async def no() -> bool:
                return False

            first = await stopping.request("T1", "C1", TURN.thread_ts, ASKER, no)
            assert first.stopped == 1
            assert await store.turn_stopped_by(turn_id) == ASKER
            second = await stopping.request("T1", "C1", TURN.thread_ts, STRANGER, no)
            return stop_answer(first), stop_answer(second)
        finally:
            await store.close()

    first, second = asyncio.run(main())
    assert first == "Stopped 1 turn."
    assert second == "Already stopping: the agents' work is being cancelled.", second


def test_the_asker_of_the_next_turn_may_stop_it_while_the_one_before_is_stopping(tmp_path: Path) -> None:
    """maria's turn was stopped (it stays `stopping` until its Letta runs are cancelled, or, its process gone,
    until the takeover); sam then asked in the same thread, and his turn waits. sam says stop: his is the
    thread's next turn (docs/sessions.md "Who may stop"), yet he was refused in maria's name, and his turn ran."""
    follow_up = Turn("T1", "C1", "1.000009", "1.000001", STRANGER, "and another thing", "Ev2")

    async def main() -> tuple[str, str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            first = await store.accept_turn(TURN, "otid-1")
            assert first is not None and await store.take_turn(first) is not None
            stopping = Stopping(store, NotHere())

            async def no() -> bool:
                return False

            assert (await stopping.request("T1", "C1", TURN.thread_ts, ASKER, no)).stopped == 1
            second = await store.accept_turn(follow_up, "otid-2")
            assert second is not None
            outcome = await stopping.request("T1", "C1", TURN.thread_ts, STRANGER, no)
            return stop_answer(outcome), await store.turn_stopped_by(second)
        finally:
            await store.close()

    answer, stopped_by = asyncio.run(main())
    assert answer == "Stopped 1 turn.", answer
    assert stopped_by == STRANGER
