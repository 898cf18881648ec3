"""Agents asked at once (broadcast, a supervisor's workers) that all meet one failure of the server itself (Letta
down, the key rejected, a rate limit): the thread is told it once, then who met it too in one note naming whose
failure it was ("bob and carol met the same failure as alice."), as another agent's own failure may come between,
and who was never sent the message because of it ("boss was not asked because of it.")."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentFailure, AgentRef, Target, TurnEvent, TurnInput
from bridge.letta.errors import Kind
from bridge.letta.patterns import Step, play
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

ALICE, BOB, CAROL, BOSS = (AgentRef(f"agent-{n}", n) for n in ("alice", "bob", "carol", "boss"))
REJECTED = "The Letta server rejected the bridge's API key (HTTP 401). An operator needs to check LETTA_API_KEY."


class Refusing(Step):
    """Every send refused with the same words, as Letta refuses a rejected key; `own`: agents failing otherwise."""

    def __init__(self, own: dict[str, AgentFailure] | None = None) -> None:
        self.asked: list[str] = []
        self._own = own or {}

    async def step(self, agent: AgentRef, *args: object, **kwargs: object) -> list[TurnEvent]:  # type: ignore[override]
        self.asked.append(agent.name)
        await asyncio.sleep(0.01 * len(self.asked))  # alice first, then bob, carol
        if agent.name in self._own:
            return [self._own[agent.name]]
        return [AgentFailure(agent.name, REJECTED, Kind.UNAUTHORIZED, agent.id, step=agent.id)]


def failures(runner: Step, target: Target) -> list[str]:
    async def go() -> list[TurnEvent]:
        return [e async for e in play(runner, target, TurnInput("hi all", OTID, "maria"), NoTranscript(),
                                      MemoryJournal())]

    return [e.message for e in asyncio.run(go()) if isinstance(e, AgentFailure)]


def test_a_broadcast_whose_key_is_rejected_says_so_once_and_that_the_others_met_it_too() -> None:
    """Before: three posts of 'The Letta server rejected the bridge's API key', one per agent; then a note that
    said 'bob, carol were not asked', though every agent was sent the message."""
    runner = Refusing()
    said = failures(runner, Target("agents", (ALICE, BOB, CAROL), broadcast=True))
    assert runner.asked == ["alice", "bob", "carol"]
    assert said == [REJECTED, "bob and carol met the same failure as alice."], said


def test_a_supervisor_whose_key_is_rejected_says_the_workers_met_it_and_the_manager_was_not_asked() -> None:
    """The workers were sent the message, the manager never was. Before: 'bob, carol, boss were not asked'."""
    runner = Refusing()
    target = Target("agents", (ALICE, BOB, CAROL), manager_type="supervisor", manager=BOSS)
    said = failures(runner, target)
    assert said == [REJECTED, "bob and carol met the same failure as alice; boss was not asked because of it."], said
    assert "boss" not in runner.asked


def test_a_failure_of_an_agent_of_its_own_is_still_said_beside_the_server_wide_one() -> None:
    """A failure in other words (the agent's own, or one that names the agent: a timeout) is said as it came; the
    note after it names whose failure carol met, which is not bob's just above. Before: 'carol met the same
    failure.', read as bob's timeout."""
    own = AgentFailure("bob", "The Letta server did not answer in time for bob.", Kind.TIMEOUT, BOB.id, step=BOB.id)
    said = failures(Refusing({"bob": own}), Target("agents", (ALICE, BOB, CAROL), broadcast=True))
    assert said == [REJECTED, own.message, "carol met the same failure as alice."], said


def test_a_server_wide_failure_said_after_an_agents_own_one_is_still_said_once() -> None:
    """alice's own timeout (naming her) comes first; bob's and carol's rejected key, in the same words, is said once.
    Before: only failures matching the first one said were folded, so bob's and carol's were each posted."""
    own = AgentFailure("alice", "The Letta server did not answer in time for alice.", Kind.TIMEOUT, ALICE.id,
                       step=ALICE.id)
    said = failures(Refusing({"alice": own}), Target("agents", (ALICE, BOB, CAROL), broadcast=True))
    assert said == [own.message, REJECTED, "carol met the same failure as bob."], said


def test_a_supervisors_note_names_the_failure_that_spared_its_manager_when_another_was_met() -> None:
    """alice's own timeout comes first and spares the manager; carol met bob's rejected key: the note names both.
    Before: 'carol met the same failure; boss was not asked, for the same reason.'"""
    own = AgentFailure("alice", "The Letta server did not answer in time for alice.", Kind.TIMEOUT, ALICE.id,
                       step=ALICE.id)
    target = Target("agents", (ALICE, BOB, CAROL), manager_type="supervisor", manager=BOSS)
    said = failures(Refusing({"alice": own}), target)
    assert said == [
        own.message, REJECTED, "carol met the same failure as bob; boss was not asked because of alice's failure."
    ], said
