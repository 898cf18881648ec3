"""bridge/letta/patterns.py as a team running Letta groups sees it: a dynamic manager's choice never shown in the
thread, a managed group whose manager could not be looked up never played as if it had none."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentRef, AgentReply, Target, ToolProgress, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


class SeenDrafts:
    """Every draft a runner grows, by step."""

    def __init__(self) -> None:
        self.grown: list[tuple[str, str, str]] = []

    async def grow(self, step: str, index: int, agent_name: str, text: str) -> None:
        self.grown.append((step, agent_name, text))

    async def tool(self, step: str, index: int, agent_name: str, progress: ToolProgress) -> None:
        self.grown.append((step, agent_name, progress.name))


def run(letta: FakeLetta, target: Target, drafts: SeenDrafts | None = None, tokens: bool = False) -> list[TurnEvent]:
    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url)
        try:
            runner = BridgeRunner(client, patience=1.0, tokens=tokens)
            turn = TurnInput("hi all", OTID, "maria", drafts=drafts)
            return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_dynamic_managers_choice_is_never_drafted_in_the_thread(letta: FakeLetta) -> None:
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    letta.set_reply(boss, lambda text: "DONE!" if '"agent": "alice"' in text else "alice")
    target = Target("agents", (AgentRef(alice, "alice"),), manager_type="dynamic", manager=AgentRef(boss, "boss"),
                    max_turns=3, termination_token="DONE!")
    drafts = SeenDrafts()
    events = run(letta, target, drafts, tokens=True)
    assert [(e.agent_name, e.text) for e in events if isinstance(e, AgentReply)] == [("alice", "alice says hi")]
    assert {name for _, name, _ in drafts.grown} == {"alice"}, f"the manager's choice was shown: {drafts.grown}"

