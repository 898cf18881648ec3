"""A stop where a thread is not a Letta conversation (the channel's switch is off) on a server that has them: the
agent's cancel route there cancels every run of the agent, its conversations' too (reference/letta README,
"Cancel"; Letta 0.16.8's `cancel_message` lists the agent's active runs whatever their conversation). Letta is the
fake 0.16.8, the store a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain import AgentRef, Target, Turn
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.locks import TURN_HOLDS
from bridge.letta.models import AssistantMessage, LettaMessage
from bridge.letta.own_runs import TURN_RUNS
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


def message(text: str, otid: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "otid": otid, "name": "maria"}


def test_a_stop_in_a_channel_without_conversations_leaves_the_agents_other_threads_running(
    letta: FakeLetta, tmp_path: Path
) -> None:
    """alice answers in #ops (conversations off there: her own `default` thread) and in a #research thread (its
    conversation). Stop in #ops: before, the agent route cancelled both runs, and the #research thread's reply
    ended `cancelled`, unsaid, though nobody stopped it. Now only the run outside every conversation is cancelled."""
    alice = letta.add_agent("alice")
    letta.set_delay(alice, 1.0)

    async def main() -> tuple[list[LettaMessage], list[LettaMessage]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url, retry_base=0.01)  # type: ignore[arg-type]
        try:
            research = await client.create_conversation(alice)
            turn_id = await store.accept_turn(TURN, "otid-ops")
            assert turn_id is not None
            running = RunningTurn(turn_id, "T1", "C1", "1.000001", target=Target("agents", (AgentRef(alice, "alice"),)))
            threaded = asyncio.create_task(_drain(client, research.id, message("research?", "otid-r"), None))
            holds = TURN_HOLDS.set(running.holding)  # the ops send is the stopped turn's (TurnStops.track)
            runs = TURN_RUNS.set(running.runs)
            ops = asyncio.create_task(_drain(client, DEFAULT_CONVERSATION, message("ops?", "otid-ops"), alice))
            TURN_RUNS.reset(runs)
            TURN_HOLDS.reset(holds)
            await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 2)
            running.sending.add(alice)
            await TurnStops(store, client, 0).cancel_letta(running)
            return await threaded, await ops
        finally:
            await client.aclose()
            await store.close()

    research_said, ops_said = asyncio.run(main())
    assert [m.text for m in research_said if isinstance(m, AssistantMessage)] == ["alice says hi"]
    assert not any(isinstance(m, AssistantMessage) for m in ops_said)  # the stopped send: cancelled, unsaid


async def _drain(
    client: LettaClient, conversation: str, body: dict[str, object], agent: str | None
) -> list[LettaMessage]:
    """What the send said; a run that ended cancelled is a run failure (models.stop_failure): nothing said."""
    said: list[LettaMessage] = []
    try:
        async for item in client.stream_conversation(conversation, body, agent_id=agent):
            said.append(item)
    except LettaError as error:
        assert error.kind == Kind.RUN_FAILED and "cancelled" in error.detail, error
        return []
    return said
