"""bridge/letta/recovery.py settle and unread: a send whose outcome is unknown (a gateway's 503 after it forwarded the
send) is looked up in Letta's history; when that read itself fails on the way (a gateway's 502), the group turn goes
on: the history is read again, or the agent's outcome is said plainly as unknown, the agent is never asked again, and
the agents after it are still asked. Found by a review (revBA): the 502 ended the whole turn with "Letta failed ...
Ask again in a moment", the agents after it never asked."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent, TurnInput
from bridge.letta import recovery
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_gateway_errors import ENVOY_RESET, PLAIN
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

HISTORY = r"/v1/(conversations/default|agents/[^/]+)/messages"


def _unknown_send_then_history(letta: FakeLetta, reads_failing: int) -> tuple[dict[str, str], list[TurnEvent]]:
    """alice's send forwarded then answered 503 by a gateway; the next `reads_failing` history reads answered 502."""
    names = ("alice", "bob", "carol")
    ids = {n: letta.add_agent(n) for n in names}
    target = Target("agents", tuple(AgentRef(ids[n], n) for n in names))
    alice = ids["alice"]
    letta.gateway_next("POST", rf"/v1/(agents/{alice}/messages(/stream)?|conversations/[^/]+/messages(/stream)?)",
                       503, ENVOY_RESET, PLAIN)
    letta.fail_next("GET", HISTORY, 502, raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    headers={"content-type": "text/html"}, times=reads_failing)

    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url, retry_base=0.01, send_retries=2)
        try:
            turn = TurnInput("hi all", OTID, "maria")
            runner = BridgeRunner(client, patience=1.0)
            return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
        finally:
            await client.aclose()

    return ids, asyncio.run(asyncio.wait_for(go(), 20))


def test_history_that_cannot_be_read_says_the_outcome_is_unknown_and_asks_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recovery, "READ_AGAIN", (0.01, 0.01))
    with FakeLetta(version="0.16.8") as letta:
        ids, events = _unknown_send_then_history(letta, reads_failing=10)
        asked = {n: len([i for i in letta.inputs if i.agent_id == i_d]) for n, i_d in ids.items()}
        assert asked == {"alice": 1, "bob": 1, "carol": 1}, (asked, events)
        assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["bob", "carol"]
        [failure] = [e for e in events if isinstance(e, AgentFailure)]
        assert failure.agent_name == "alice"
        assert "could not be read back from Letta (HTTP 502)" in failure.message
        assert "alice is not asked again" in failure.message


def test_a_failed_history_read_after_an_unknown_send_does_not_end_the_group_turn() -> None:
    with FakeLetta(version="0.16.8") as letta:
        ids, events = _unknown_send_then_history(letta, reads_failing=1)
        asked = {n: len([i for i in letta.inputs if i.agent_id == i_d]) for n, i_d in ids.items()}
        assert asked == {"alice": 1, "bob": 1, "carol": 1}, (asked, events)
        assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["alice", "bob", "carol"]


def _resumed(letta: FakeLetta, fail: Callable[[], None]) -> tuple[dict[str, str], list[TurnEvent]]:
    """A turn played to its end, then resumed as after a kill right after alice's send (her answer not journaled,
    bob and carol not asked yet), with `fail` set on the fake first."""
    names = ("alice", "bob", "carol")
    ids = {n: letta.add_agent(n) for n in names}
    target = Target("agents", tuple(AgentRef(ids[n], n) for n in names))
    journal = MemoryJournal()

    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url, retry_base=0.01)
        try:
            runner = BridgeRunner(client, patience=1.0)
            turn = TurnInput("hi all", OTID, "maria")
            first = [e async for e in runner.run(target, turn, NoTranscript(), journal)]
            assert len([e for e in first if isinstance(e, AgentReply)]) == 3
            since = datetime.now(UTC) - timedelta(minutes=1)
            alice = dataclasses.replace(journal.steps[ids["alice"]], state="sending", since=since)
            journal.steps = {ids["alice"]: alice}
            fail()
            return [e async for e in BridgeRunner(client, patience=1.0).run(target, turn, NoTranscript(), journal)]
        finally:
            await client.aclose()

    return ids, asyncio.run(asyncio.wait_for(go(), 20))


def test_a_resumed_turn_whose_history_read_fails_once_does_not_end_the_group_turn() -> None:
    """The same on a restart (0.16.8 without Redis): the journal says alice's send was in flight, the look at her
    history gets a gateway's 502 once; the turn ended with 'Letta failed' and bob and carol were never asked."""
    with FakeLetta(version="0.16.8") as letta:
        bad_gateway = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        ids, events = _resumed(letta, lambda: letta.fail_next(
            "GET", HISTORY, 502, raw=bad_gateway, headers={"content-type": "text/html"}
        ))
        asked = {n: len([i for i in letta.inputs if i.agent_id == i_d]) for n, i_d in ids.items()}
        assert asked["alice"] == 1, ("alice asked twice", asked)
        assert asked["bob"] == 2 and asked["carol"] == 2, (asked, events)  # asked on resume (journal lost them)


def test_a_resumed_send_whose_history_read_is_refused_401_says_the_key_not_unknown() -> None:
    """A refusal that is no failure on the way (a key rejected: the bridge restarted with a new LETTA_API_KEY while a
    turn was in flight) is said as that refusal, not as an outcome unknown to be asked again. Found by a review
    (revBB) of 7fd488d, which said every error of the lookup as unknown."""
    with FakeLetta(version="0.16.8") as letta:
        _, events = _resumed(letta, lambda: letta.fail_next("*", r".*", 401, {"detail": "Unauthorized"}, times=50))
        said = " ".join(e.message for e in events if isinstance(e, AgentFailure))
        assert "rejected the bridge's API key" in said and "could not be read back" not in said, said
