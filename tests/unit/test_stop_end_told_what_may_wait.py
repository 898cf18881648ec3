"""The process ending a stop looks in history for a request the agent made after the stop's denial, once no run is
going; when one is still listed going after the wait (recovery.PATIENCE), what waits is not known. Before, that was
taken for nothing waiting: the turn was marked stopped and a request left pending blocked the thread with nobody told.
Found by review secKH of 24b6e19."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentRef, Target
from bridge.letta import recovery
from bridge.letta.client import LettaClient
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import asking_once, denied_unread


def test_a_stop_end_that_cannot_tell_what_waits_tells_the_thread_how_to_clear_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of finn's is still listed going after the wait: the thread is told that a request may still wait on
    Letta, what that blocks, and how an operator finds and denies it (the decided call's id given)."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)

    async def main(letta: FakeLetta, finn: str) -> tuple[list[Any], str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            turn_id, desk, rows, settings = await denied_unread(store, client, finn)

            async def going(*_a: object, **_k: object) -> list[dict[str, object]]:
                return [{"id": "run-1", "status": "running"}]  # another send of finn's, listed going throughout
            client.active_runs = going  # type: ignore[method-assign]
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            thread = Recorder()
            end = StopEnd(store, TurnStops(store, client, 0), thread, Recorder(True), desk,  # type: ignore[arg-type]
                          settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"),)))
            return thread.calls, rows[0].asked.tool_call_id
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        calls, call_id = asyncio.run(main(letta, asking_once(letta)))
    told = [c[3].text for c in calls if c[0] == "post" and c[1:3] == ("C1", "1.000001") and "could not tell" in
            c[3].text]
    assert told == [
        "After the stop, the bridge could not tell whether finn still waits for a tool call to be decided (Letta was"
        f" still working on the decision after 0.5 seconds): tool call id `{call_id}`, decided before, or one finn"
        " asked for after it, may wait on Letta, which takes no new message for finn, in any channel or thread that"
        " uses finn, until it is decided. An operator can find it in the agent's history in Letta (an approval"
        " request with no tool return) and deny it with an approval message to the agent."
    ], calls
