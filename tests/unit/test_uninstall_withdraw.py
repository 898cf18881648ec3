"""The tool calls of turns a workspace's removal ended, withdrawn without holding the removal up
(bridge/stop_end.py `withdraw_ended`): their rows are settled at once, a Letta that does not answer is given up on
within the bound with one log line, and a removal that ended no turn with a card never reaches for a Letta client.
The store is a real SQLite file; Letta is a double."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge import stop_end
from bridge.domain import AgentRef, Binding, Decision, Target
from bridge.letta.approving import STOPPED, approval_message
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked as Question
from bridge.letta.exchange import Said, exchange
from bridge.letta.models import LettaMessage
from bridge.letta.wire import user_message
from bridge.stop_end import withdraw_ended
from bridge.store import open_store
from bridge.store.approvals import ApprovalStore, Asked
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import stopping_turn
from tests.unit.test_stop_end_asked_again import asking_once, asking_twice, next_answer, waiting_turn
from tests.unit.test_stop_end_each_agent_looked_after import asked_in, denied_unread


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




class SlowAfterFirst(LettaClient):
    """Letta as a slow network shows it: every send after the first takes `pause` seconds to go out."""

    def __init__(self, base_url: str, pause: float) -> None:
        super().__init__(base_url)
        self.sends, self.pause = 0, pause

    async def stream_agent(
        self, agent_id: str, message: dict[str, Any], tokens: bool = False
    ) -> AsyncIterator[LettaMessage]:
        self.sends += 1
        if self.sends > 1:
            await asyncio.sleep(self.pause)
        async for item in super().stream_agent(agent_id, message, tokens):
            yield item


def test_the_removal_deadline_never_cuts_a_recorded_denial_before_it_reaches_letta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent answers the removal's denial by asking again; that request is recorded as being denied, and its
    denial goes out however long it takes once Letta has answered: nothing would ever look at it again."""
    monkeypatch.setattr(stop_end, "CANCEL_DEADLINE", 0.5)

    async def main(letta: FakeLetta, finn: str) -> tuple[list[dict[str, Any]], list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = SlowAfterFirst(letta.base_url, 1.0)
        try:
            first = LettaClient(letta.base_url)
            spoken = [s async for s in exchange(first, user_message("use shout", "otid-x", "maria"), "finn", True,
                                                agent_id=finn)]
            await first.aclose()
            [question] = [s for s in spoken if isinstance(s, Question)]
            await store.put_binding(Binding("T1", "C1", Target("agents", (AgentRef(finn, "finn"),))))
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None and await store.take_turn(turn_id)
            approvals = ApprovalStore(store)
            await approvals.ask([Asked(turn_id, finn, c.tool_call_id, "T1", "C1", "1.000001", finn, "finn", None,
                                       question.request_id, c.name, c.arguments, "U1") for c in question.calls])

            async def letta_client() -> LettaClient:
                return client

            await withdraw_ended(letta_client, approvals, [turn_id], "the app was removed from the workspace")
            later = await next_answer(client, finn)
            return letta.approval_decisions()[:2], later
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        decisions, later = asyncio.run(main(letta, asking_twice(letta)))
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, "the app was removed from the workspace")]
    ] * 2, decisions
    assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"], later


def test_the_removal_deadline_holds_for_the_first_denial_of_a_request_found_in_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A denial that went before the removal (its process died before reading the answer) was answered by the agent
    asking again; the removal finds that request in history and denies it. Letta takes that denial's connection and
    never answers: the removal still ends at its deadline, reporting the tool calls as not denied (a TIMEOUT), since
    no denial of its own had Letta's answer yet."""
    monkeypatch.setattr(stop_end, "CANCEL_DEADLINE", 0.5)

    async def main(letta: FakeLetta, finn: str) -> LettaError | None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = SlowAfterFirst(letta.base_url, 3600.0)
        client.sends = 1  # every send to Letta is taken and never answered
        try:
            first = LettaClient(letta.base_url)
            turn_id, desk, rows, _ = await waiting_turn(store, first, finn)
            for row in rows:
                assert await desk.store.sending(row.id)
            denial = approval_message(tuple(Decision(r.asked.tool_call_id, False, STOPPED) for r in rows))
            assert [s async for s in exchange(first, denial, "finn", True, agent_id=finn)]  # its answer never read
            await first.aclose()

            async def letta_client() -> LettaClient:
                return client

            async with asyncio.timeout(5):
                return await withdraw_ended(letta_client, desk.store, [turn_id], "the app was removed")
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        error = asyncio.run(main(letta, asking_twice(letta)))
    assert error is not None and error.kind == Kind.TIMEOUT, error


def test_the_removal_deadline_is_lifted_once_letta_answered_a_denial_with_a_plain_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finn's request is denied first and Letta answers it with a plain reply; gus's request, asked after a denial
    that went before the removal, is then found in history, recorded and denied, and that denial takes longer than the
    deadline: it is not cut between its record and its send (nothing would look at it again), and gus answers next."""
    monkeypatch.setattr(stop_end, "CANCEL_DEADLINE", 0.5)

    async def main(letta: FakeLetta, finn: str, gus: str) -> tuple[LettaError | None, list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = SlowAfterFirst(letta.base_url, 1.0)
        try:
            first = LettaClient(letta.base_url)
            turn_id, desk, _, _ = await waiting_turn(store, first, finn)
            await denied_unread(first, desk.store, await asked_in(first, desk.store, turn_id, gus), gus, "gus")
            await first.aclose()

            async def letta_client() -> LettaClient:
                return client

            error = await withdraw_ended(letta_client, desk.store, [turn_id], "the app was removed")
            return error, await next_answer(client, gus, "gus")
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        error, later = asyncio.run(main(letta, asking_once(letta), asking_twice(letta, "gus")))
    assert error is None, error
    assert [s.text for s in later if isinstance(s, Said)] == ["gus says hi"], later
