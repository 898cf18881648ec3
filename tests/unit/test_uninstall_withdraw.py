"""The tool calls of turns a workspace's removal ended, withdrawn without holding the removal up
(bridge/stop_end.py `withdraw_ended`): their rows are settled at once, a Letta that does not answer is given up on
within the bound with one log line, and a removal that ended no turn with a card never reaches for a Letta client.
The store is a real SQLite file; Letta is a double."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bridge import stop_end
from bridge.letta.client import LettaClient
from bridge.stop_end import withdraw_ended
from bridge.store import open_store
from bridge.store.approvals import ApprovalStore
from tests.unit.test_stop_end import stopping_turn


def test_a_letta_that_does_not_answer_never_holds_a_removal_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(stop_end, "CANCEL_DEADLINE", 0.2)
    asked: list[str] = []

    async def silent() -> LettaClient:
        asked.append("letta")
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            turn_id = await stopping_turn(store)
            approvals = ApprovalStore(store)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await withdraw_ended(silent, approvals, [turn_id], "the app was removed from the workspace")
            assert loop.time() - began < 2.0
            assert [r.outcome for r in await approvals.for_turn(turn_id)] == ["stopped"]
            await withdraw_ended(silent, approvals, [turn_id, turn_id + 1], "the app was removed from the workspace")
            assert asked == ["letta"]  # nothing open any more: no Letta reached for
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="bridge.stop_end"):
        asyncio.run(main())
    warned = [r.getMessage() for r in caplog.records if "not withdrawn" in r.getMessage()]
    assert len(warned) == 1 and "TimeoutError" in warned[0], warned


