"""bridge/letta/appserver_runner.py: a socket dropped mid-turn before any text reached the bridge. The server
ends the turn and keeps what the model had written so far (capture ws-disconnect-mid-turn-no-reconnect.json:
socket a got no text, history holds 'bob '). The runner finds it by otid and posts it, saying it may be only
part of the answer; before, the stub was posted as the agent's whole reply."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, TurnInput
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.appserver_runner import AppServerRunner
from tests.fakes.appserver import FakeAppServer


class Journal:
    otid = "otid-cut-1"

    def __init__(self) -> None:
        self.answered_with: Any = None

    async def sending(self, key: str) -> None:
        pass

    async def answered(self, key: str, replies: Any, failure: Any, upto: Any) -> None:
        self.answered_with = (replies, failure)


class Transcript:
    async def unseen(self, agent_id: str) -> tuple[list[Any], int | None]:
        return [], None


class Threads:
    def __init__(self, conversation: str) -> None:
        self.conv = conversation

    async def conversation(self, agent_id: str) -> str:
        return self.conv

    async def renew(self, agent_id: str, gone: str) -> str:
        raise AssertionError("not expected")

    async def earlier(self, agent_id: str) -> str:
        return ""


def test_a_reply_found_after_a_drop_is_posted_with_word_that_it_may_be_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAppServer(scale=0.001)
    fake.start()
    dave = fake.add_agent("dave", mode="slow:0.3")
    monkeypatch.setattr(random, "random", lambda: 1.0)  # reconnect after backoff_base (0.5 s): past the model call

    async def main() -> list[Any]:
        letta = AppServerLetta(fake.url)
        try:
            conv = await letta.app.create_conversation(dave, "T:C:1.0")
            runner = AppServerRunner(letta, deadline=30)
            turn = TurnInput(text="hello", otid=Journal.otid, sender="u", threads=Threads(conv.id))
            journal = Journal()
            asking = asyncio.ensure_future(
                runner.ask(AgentRef(dave, "dave"), turn, Transcript(), journal, dave, None, None)  # type: ignore[arg-type]
            )
            await asyncio.sleep(0.1)
            fake.drop_connections()  # before the model's first chunk: the bridge has received no text
            return await asyncio.wait_for(asking, 10)
        finally:
            await letta.aclose(wait=1)

    try:
        events = asyncio.run(main())
    finally:
        fake.stop()
    replies = [e for e in events if isinstance(e, AgentReply)]
    failures = [e for e in events if isinstance(e, AgentFailure)]
    assert [r.text for r in replies] == ["dave"], "what the server kept is posted"
    [failure] = failures
    assert "dropped while dave was answering" in failure.message and "part of the answer" in failure.message
