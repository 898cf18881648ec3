"""The process ending a stop looks after each agent of the turn, all at once: when what waits on one agent cannot be
told (a run of finn's still listed going after the wait), the thread is told of finn, and another agent of the same
turn is still looked after. Before, the first agent's TIMEOUT returned at once: gus's request, asked after the stop's
denial, was never denied, and gus refused every later message with no notice naming gus. Found by review secKL of
f126310."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge import stop_end
from bridge.domain import AgentRef, Decision, Target
from bridge.letta import recovery
from bridge.letta.approving import STOPPED, approval_message
from bridge.letta.client import LettaClient
from bridge.letta.exchange import Asked as Question
from bridge.letta.exchange import Said, exchange
from bridge.letta.wire import user_message
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from bridge.store.approvals import Approval, ApprovalStore, Asked
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import asking_once, asking_twice, next_answer, waiting_turn


async def asked_in(client: LettaClient, approvals: ApprovalStore, turn_id: int, gus: str) -> list[Approval]:
    """gus, a second agent of the turn (its thread 1.000001), asked for a tool: its recorded rows."""
    spoken = [s async for s in exchange(client, user_message("use shout", "otid-g", "maria"), "gus", True,
                                        agent_id=gus)]
    [q] = [s for s in spoken if isinstance(s, Question)]
    return await approvals.ask([Asked(turn_id, gus, c.tool_call_id, "T1", "C1", "1.000001", gus, "gus", None,
                                      q.request_id, c.name, c.arguments, "U1") for c in q.calls])


async def denied_unread(client: LettaClient, approvals: ApprovalStore, rows: list[Approval], agent: str,
                        name: str) -> None:
    """A dead process's stop marked the agent's rows as sent and denied them, and never read the answer."""
    for row in rows:
        assert await approvals.sending(row.id)
    denial = approval_message(tuple(Decision(r.asked.tool_call_id, False, STOPPED) for r in rows))
    assert [s async for s in exchange(client, denial, name, True, agent_id=agent)]


Runs = Callable[[str, str, Any], Callable[..., Awaitable[list[dict[str, Any]]]]]


def stop_ended(tmp_path: Path, runs: Runs) -> tuple[list[Any], list[Any]]:
    """finn's and gus's requests denied by a dead process's stop (gus answered by asking again), its end run with
    the run list `runs(finn, gus, real)` gives: what the thread was told, and what gus answers next."""

    async def main(letta: FakeLetta, finn: str, gus: str) -> tuple[list[Any], list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            turn_id, desk, rows, settings = await waiting_turn(store, client, finn)
            await denied_unread(client, desk.store, rows, finn, "finn")
            await denied_unread(client, desk.store, await asked_in(client, desk.store, turn_id, gus), gus, "gus")
            real = client.active_runs
            client.active_runs = runs(finn, gus, real)  # type: ignore[method-assign]
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            thread = Recorder()
            end = StopEnd(store, TurnStops(store, client, 0), thread, Recorder(True), desk,  # type: ignore[arg-type]
                          settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"), AgentRef(gus, "gus"))))
            client.active_runs = real  # type: ignore[method-assign]
            return thread.calls, await next_answer(client, gus, "gus")
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        return asyncio.run(main(letta, asking_once(letta), asking_twice(letta, "gus")))


def test_one_agents_timeout_still_denies_another_agents_request_asked_after_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finn's and gus's requests were denied by the dead process's stop; gus answered by asking again, and a run of
    finn's stays listed going: the thread is told finn may wait, gus's request is denied, and gus answers next."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)

    def runs(finn: str, gus: str, real: Any) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
        async def going(agent_id: str, *a: Any, **k: Any) -> list[dict[str, Any]]:
            if agent_id == finn:  # a run of finn's, listed going throughout
                return [{"id": "run-1", "status": "running"}]
            return list(await real(agent_id, *a, **k))
        return going

    calls, later = stop_ended(tmp_path, runs)
    told = [c[3].text for c in calls if c[0] == "post" and "could not tell" in c[3].text]
    assert len(told) == 1 and "finn" in told[0] and "gus" not in told[0], calls
    assert [s.text for s in later if isinstance(s, Said)] == ["gus says hi"], later


def test_each_agents_chain_is_read_at_once_not_one_wait_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of finn's and of gus's both stay listed going: each agent's wait (recovery.PATIENCE) runs beside the
    other's, so a turn with N busy agents holds its channel one wait, not N (review secKQ of 459910d); each thread
    is told of its own agent."""
    monkeypatch.setattr(recovery, "PATIENCE", 1.0)
    first: dict[str, float] = {}

    def runs(finn: str, gus: str, real: Any) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
        async def going(agent_id: str, *a: Any, **k: Any) -> list[dict[str, Any]]:
            first.setdefault({finn: "finn", gus: "gus"}.get(agent_id, agent_id), asyncio.get_running_loop().time())
            return [{"id": f"run-{agent_id}", "status": "running"}]
        return going

    calls, _ = stop_ended(tmp_path, runs)
    told = sorted(c[3].text.split("'s was")[0] for c in calls if c[0] == "post" and "could not tell" in c[3].text)
    assert told == ["After the stop, a run of finn", "After the stop, a run of gus"], calls
    assert abs(first["finn"] - first["gus"]) < 0.5, first


def test_a_chain_that_raises_leaves_no_other_agent_denying_after_the_stop_end_gave_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One agent's chain failing with other than Letta's error (the database locked, Slack) is raised only once
    every other agent's chain has ended (second reader secKU on bdcb8c5): gus's denial was still being recorded and
    sent after the stop's end had given up, past a removal's deadline."""
    events: list[str] = []

    async def chain(*args: object) -> None:
        rows = args[2]
        assert isinstance(rows, list)
        if rows[0].asked.agent_id == "finn":
            raise RuntimeError("database is locked")
        await asyncio.sleep(0.2)
        events.append("gus denied")

    monkeypatch.setattr(stop_end, "_deny_chain", chain)

    def row(agent: str) -> SimpleNamespace:
        return SimpleNamespace(asked=SimpleNamespace(agent_id=agent, conversation_id=None))

    async def main() -> None:
        try:
            await stop_end._deny_waiting(None, None, [row("finn"), row("gus")], "stopped", None, None)  # type: ignore[arg-type]
        except RuntimeError:
            events.append("caller gave up")
        await asyncio.sleep(0.4)

    asyncio.run(main())
    assert events == ["gus denied", "caller gave up"], events
