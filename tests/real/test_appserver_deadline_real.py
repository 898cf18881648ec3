"""On a real App Server (letta==0.34.12): a model slower than TURN_DEADLINE_SECONDS. The bridge takes the message
back at its deadline; the server ends the turn when the model call returns and may keep the reply's first chunk.
The thread is told the agent did not answer in time; before, the runner found that chunk by otid, posted it as the
agent's reply and said the connection had dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnInput
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.appserver_runner import AppServerRunner
from bridge.store import open_store
from bridge.threads import ThreadConversations
from tests.real import test_appserver_real
from tests.real.fake_model import FakeModel
from tests.real.test_appserver_real import make_agent
from tests.unit.test_patterns import MemoryJournal, NoTranscript

pytestmark = pytest.mark.real
server = test_appserver_real.server


def test_a_deadline_on_a_real_app_server_is_not_said_as_a_dropped_connection(
    server: tuple[str, FakeModel], tmp_path: Path
) -> None:
    url, model = server
    model.mode = "slow:4"

    async def main() -> list[Any]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        letta = AppServerLetta(url, request_timeout=30.0)
        letta.app.abort_wait = 8.0  # long enough to see the turn end when the model call returns
        try:
            dave = await make_agent(letta.app, "dave")
            runner = AppServerRunner(letta, deadline=2.0)
            threads = ThreadConversations(store, letta, "T1", "C1", "1.0")
            journal = MemoryJournal()
            journal.otid = "7d2a6c3e-56d3-4de6-9f77-3b8c6e3f9a32"
            said = TurnInput("hello", journal.otid, "maria", threads=threads)
            target = Target("agents", (AgentRef(dave, "dave"),))
            return [e async for e in runner.run(target, said, NoTranscript(), journal)]
        finally:
            await letta.aclose(wait=10)
            await store.close()

    events = asyncio.run(main())
    replies = [e.text for e in events if isinstance(e, AgentReply)]
    [failure] = [e for e in events if isinstance(e, AgentFailure)]
    print("REPLIES", replies, "FAILURE", failure.message)
    assert "dropped" not in failure.message, (replies, failure.message)
