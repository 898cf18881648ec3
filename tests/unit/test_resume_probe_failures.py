"""The first look at Letta of a send (the resume probe, `LettaClient.has_resume`) failing on the way: a gateway's
502, Envoy's `no healthy upstream` while Letta restarts. It is asked again as a read is; a resumed send (the bridge
died mid-send, the step is `sending`) whose probe keeps failing is looked up in history, never ended as unsent."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent
from bridge.letta import bridge_runner, recovery
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import MemoryJournal
from tests.unit.test_send_recovery import play

PROBE = r"/v1/conversations/default/stream"
ENVOY = {"content-type": "text/plain", "server": "envoy"}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_runner, "PROBE_AGAIN", (0.01, 0.01))
    monkeypatch.setattr(recovery, "READ_AGAIN", (0.01, 0.01))


def resumed(letta: FakeLetta, fail: tuple[str, str, int, int]) -> tuple[list[TurnEvent], list[TurnEvent]]:
    """alice answered before the bridge died mid-send; the restarted process resumes the step with `fail` (method,
    path, status, times) met at Letta."""
    alice = letta.add_agent("alice")
    target = Target("agents", (AgentRef(alice, "alice"),))
    journal = MemoryJournal()

    async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
        dead, resuming = LettaClient(letta.base_url), LettaClient(letta.base_url)
        try:
            first = await play(dead, target, journal)
            since = datetime.now(UTC) - timedelta(minutes=1)
            steps = journal.steps.items()
            journal.steps = {k: dataclasses.replace(r, state="sending", since=since) for k, r in steps}
            method, path, status, times = fail
            letta.fail_next(method, path, status, body={"detail": "Bad Gateway"}, times=times)
            return first, await play(resuming, target, journal)
        finally:
            await dead.aclose()
            await resuming.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("times", [1, 100], ids=["once", "for-good"])
def test_a_resumed_send_whose_resume_probe_meets_a_gateways_502_posts_the_stored_answer(times: int) -> None:
    with FakeLetta(version="0.16.8", redis=True) as letta:
        first, again = resumed(letta, ("POST", PROBE, 502, times))
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        failures = [e.message for e in again if isinstance(e, AgentFailure)]
        assert [e.text for e in again if isinstance(e, AgentReply)] == ["alice says hi"], failures
        assert len(letta.sends()) == 1


def test_a_resumed_send_with_letta_unreadable_is_not_asked_again_and_says_so() -> None:
    with FakeLetta(version="0.16.8", redis=True) as letta:
        _, again = resumed(letta, ("*", r".*", 502, 1000))
        failures = [e for e in again if isinstance(e, AgentFailure)]
        assert len(failures) == 1 and "is not asked again" in failures[0].message, failures
        assert len(letta.sends()) == 1


def first_turn(letta: FakeLetta, times: int) -> list[TurnEvent]:
    alice = letta.add_agent("alice")
    target = Target("agents", (AgentRef(alice, "alice"),))
    letta.fail_next("POST", PROBE, 503, raw=b"no healthy upstream", headers=ENVOY, times=times)

    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url, retry_base=0.05)
        try:
            return await play(client, target, MemoryJournal())
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_first_turn_whose_resume_probe_meets_envoys_no_healthy_upstream_is_asked_again() -> None:
    """Letta restarting behind Envoy: its `no healthy upstream` 503 proves the request never reached Letta, and a
    send meeting it is made again (docs/guarantees.md, Outages explained); so is the probe before it."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        events = first_turn(letta, 1)
        failures = [e.message for e in events if isinstance(e, AgentFailure)]
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["alice says hi"], failures


def test_a_first_turn_whose_probe_fails_for_good_is_not_sent_and_says_letta_was_not_reached() -> None:
    with FakeLetta(version="0.16.8", redis=True) as letta:
        events = first_turn(letta, 100)
        failures = [e.message for e in events if isinstance(e, AgentFailure)]
        assert len(failures) == 1 and "couldn't reach the Letta server" in failures[0], failures
        assert "no Letta server to send it to" in failures[0], failures
        assert letta.sends() == []
