"""A Stop in a channel whose agent answers in its own (`default`) thread, on a server with conversations (0.16.8,
Letta Cloud): the bridge cancels by agent. Another Letta client (a script, the ADE, Letta Code) asking the same
agent over the agent route at that moment has a run there too, with no conversation: the Slack user's Stop must not
cancel it (docs/guarantees.md: "A Stop cancels the runs of the stopped turn's own sends only"). Checked on a real
0.16.8 with Redis too: both runs were cancelled, the script's stream ended `stop_reason: cancelled`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bridge.domain import AgentRef, Target, Turn, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


async def script(base_url: str, agent_id: str) -> list[str]:
    """Another Letta client asking alice over the agent route; the stop reasons its stream brought."""
    body = {"messages": [{"role": "user", "content": "a script's question"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/v1/agents/{agent_id}/messages/stream", json=body) as answer:
            text = (await answer.read()).decode()
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data: {")]
    return [e["stop_reason"] for e in events if e.get("message_type") == "stop_reason"]


async def bridge_send(client: LettaClient, agent_id: str, otid: str) -> None:
    """The bridge's background send to the agent's own (`default`) thread."""
    message = {"role": "user", "content": [{"type": "text", "text": "hi"}], "otid": otid}
    async for _ in client.stream_conversation(DEFAULT_CONVERSATION, message, agent_id=agent_id, background=True):
        pass


async def _stopped_beside_a_script(
    letta: FakeLetta,
    tmp_path: Path,
    client: LettaClient,
    alice: AgentRef,
    send: Callable[[], Awaitable[None]],
    going: Callable[[RunningTurn], bool],
) -> tuple[list[str], list[str]]:
    """A script's run on alice, then the Slack turn's `send` (as the turn's, TurnStops.track), stopped once `going`:
    what the Stop cancelled, and the stop reasons the script's stream brought."""
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        other = asyncio.create_task(script(letta.base_url, alice.id))
        await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 1)
        turn_id = await store.accept_turn(TURN, "otid-1")
        assert turn_id is not None
        await store.step_sending(turn_id, alice.id)
        stops = TurnStops(store, client, 0)
        async with stops.track(turn_id, "T1", "C1", "1.000001") as running:
            running.target = Target("agents", (alice,))
            running.sending.add(alice.id)
            slack = asyncio.create_task(send())
            while not going(running):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            cancelled = await stops.cancel_letta(running)  # the Stop
            slack.cancel()
            await asyncio.gather(slack, return_exceptions=True)
        return cancelled, await other
    finally:
        await client.aclose()
        await store.close()


def test_a_stop_in_slack_does_not_cancel_another_clients_run_on_the_same_agent(tmp_path: Path) -> None:
    """The Slack turn's send runs beside the script's: the Stop cancels the turn's run, not the script's."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 1.5)
        client = LettaClient(letta.base_url)
        client.locks = AgentLocks(EarlierSends(ended=True))  # a bridge started cleanly: sends go at once

        async def slack_turn() -> None:
            runner = BridgeRunner(client)
            turn_input = TurnInput("hi", OTID, "maria")
            async for _ in runner.run(Target("agents", (alice,)), turn_input, NoTranscript(), MemoryJournal()):
                pass

        def beside(_: RunningTurn) -> bool:
            return len(letta.inputs) >= 2  # the Slack turn's send is running beside the script's

        stopped = _stopped_beside_a_script(letta, tmp_path, client, alice, slack_turn, beside)
        cancelled, script_stops = asyncio.run(asyncio.wait_for(stopped, 30))
        assert cancelled == [alice.id], "the Stop did not cancel the Slack turn's own run"
        assert script_stops == ["end_turn"], f"the Slack user's Stop cancelled another client's run: {script_stops}"


def test_a_stop_while_the_restarted_bridge_waits_out_earlier_runs_cancels_nothing(tmp_path: Path) -> None:
    """Just after a restart the turn's send waits until Letta lists no run of the agent outside its conversations
    before it goes: another client's run is one. A Stop then has no run of its own to cancel (before, it cancelled
    only the other client's), and that run goes on."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 1.5)
        client = LettaClient(letta.base_url)  # just started: it waits out the agent's runs before sending

        def waiting(running: RunningTurn) -> bool:
            return alice.id in running.holding  # its lock taken, its send waiting on the script's run

        send = lambda: bridge_send(client, alice.id, "otid-1")  # noqa: E731
        stopped = _stopped_beside_a_script(letta, tmp_path, client, alice, send, waiting)
        cancelled, script_stops = asyncio.run(asyncio.wait_for(stopped, 30))
        assert cancelled == [], f"the Stop cancelled a run its turn never started: {cancelled}"
        assert script_stops == ["end_turn"], f"the Stop cancelled another client's run: {script_stops}"
