"""The Letta client's conversation routes and the bridge runner's use of them, against the fake Letta."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from bridge.domain import AgentRef, AgentReply, StepRecord, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import AssistantMessage, UserMessage
from bridge.letta.recovery import find_turn
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

T = TypeVar("T")


def with_client(letta: FakeLetta, body: Callable[[LettaClient], Awaitable[T]], **options: float) -> T:
    async def go() -> T:
        client = LettaClient(letta.base_url, retry_base=0.01, **options)  # type: ignore[arg-type]
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def message(text: str, otid: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "otid": otid, "name": "maria"}


def test_a_conversation_is_created_streamed_to_and_read_back_oldest_first(letta: FakeLetta) -> None:
    dora = letta.add_agent("dora")

    async def body(client: LettaClient) -> list[object]:
        assert await client.has_conversations()
        made = await client.create_conversation(dora, summary="Slack C1 1.0001")
        assert made.agent_id == dora and made.summary == "Slack C1 1.0001"
        streamed = [m async for m in client.stream_conversation(made.id, message("first", "otid-1"), tokens=True)]
        assert "".join(m.text for m in streamed if isinstance(m, AssistantMessage)) == "dora says hi"
        plain = await client.send_conversation(made.id, message("second", "otid-2"))
        assert [m.text for m in plain.messages if isinstance(m, AssistantMessage)] == ["dora says hi"]
        return list(await client.conversation_history(made.id))

    history = with_client(letta, body)
    assert [type(m).__name__ for m in history][1:] == ["UserMessage", "AssistantMessage"] * 2
    assert [m.otid for m in history if isinstance(m, UserMessage)] == ["otid-1", "otid-2"]
    [streamed, plain] = [r for r in letta.sends()]
    assert streamed.body["streaming"] is True and streamed.body["stream_tokens"] is True
    assert plain.body["streaming"] is False


@pytest.mark.parametrize("version", ["0.11.7", "0.16.4"])
def test_a_server_without_conversations_is_remembered(version: str) -> None:
    with FakeLetta(version) as older:
        agent = older.add_agent("dora")

        async def body(client: LettaClient) -> None:
            assert not await client.has_conversations()
            client.conversations = None
            with pytest.raises(LettaError) as missing:
                await client.create_conversation(agent)
            assert missing.value.kind == Kind.ROUTE_MISSING and client.conversations is False
            assert not await client.has_conversations()

        with_client(older, body)
        assert len([r for r in older.requests if r.path == "/v1/conversations/"]) == 2  # asked once, then known


def test_a_busy_conversation_is_waited_out_then_sent_once(letta: FakeLetta) -> None:
    dora = letta.add_agent("dora")

    async def body(client: LettaClient) -> str:
        made = await client.create_conversation(dora)
        letta.busy_next(made.id, times=2)
        replies = [m async for m in client.stream_conversation(made.id, message("hi", "otid-1"))]
        assert any(isinstance(m, AssistantMessage) for m in replies)
        return made.id

    conv_id = with_client(letta, body)
    # The fake notes a stream's status once its handler returns, which can be just after the client read the end.
    letta.wait_for(lambda: all(r.status is not None for r in letta.sends()))
    assert [r.status for r in letta.sends()] == [409, 409, 200]
    assert len(letta.inputs) == 1 and letta.inputs[0].conversation == conv_id


def test_a_conversation_busy_for_too_long_is_a_conflict_said_in_plain_words(letta: FakeLetta) -> None:
    dora = letta.add_agent("dora")

    async def body(client: LettaClient) -> LettaError:
        made = await client.create_conversation(dora)
        letta.busy_next(made.id, times=50)
        with pytest.raises(LettaError) as busy:
            await client.send_conversation(made.id, message("hi", "otid-1"))
        return busy.value

    error = with_client(letta, body, busy_wait=0.05)
    assert error.kind == Kind.CONFLICT and error.run_id and "busy" in error.explain("dora")
    assert letta.inputs == [] and 1 < len(letta.sends()) < 50


def test_sends_to_two_conversations_of_one_agent_overlap_but_never_to_one(letta: FakeLetta) -> None:
    dora = letta.add_agent("dora")
    letta.set_delay(dora, 0.3)

    async def body(client: LettaClient) -> None:
        first, second = await client.create_conversation(dora), await client.create_conversation(dora)
        await asyncio.gather(
            *(client.send_conversation(c.id, message("hi", f"otid-{n}")) for n, c in enumerate((first, second, first)))
        )

    with_client(letta, body)
    assert letta.overlaps == []
    by_conv: dict[str | None, list[tuple[float, float | None]]] = {}
    for inp in letta.inputs:
        by_conv.setdefault(inp.conversation, []).append((inp.started, inp.finished))
    [(s1, f1)], [(s2, f2), _] = sorted(by_conv.values(), key=len)
    assert f1 is not None and f2 is not None and s1 < f2 and s2 < f1  # the two threads ran at the same time


class OneThread:
    def __init__(self, conversation: str | None) -> None:
        self.conversation_id = conversation

    async def conversation(self, agent_id: str) -> str | None:
        return self.conversation_id

    async def earlier(self, agent_id: str) -> str:
        return ""


def test_the_bridge_runner_sends_to_the_threads_conversation_and_recovers_from_its_history(letta: FakeLetta) -> None:
    dora = letta.add_agent("dora")
    target = Target("agents", (AgentRef(dora, "dora"),))
    conv_id = httpx.post(f"{letta.base_url}/v1/conversations/", params={"agent_id": dora}, json={}).json()["id"]
    # The bridge died after this send reached Letta: the journal says "sending", the reply is in the thread only.
    sent = httpx.post(
        f"{letta.base_url}/v1/conversations/{conv_id}/messages",
        json={"messages": [message("hi all", OTID)], "streaming": False},
    )
    assert sent.status_code == 200
    journal = MemoryJournal()
    journal.steps[dora] = StepRecord("sending")

    async def body(client: LettaClient) -> tuple[list[TurnEvent], list[TurnEvent]]:
        assert await find_turn(client, dora, OTID) is not None  # the agent's history mixes every thread...
        assert await find_turn(client, dora, OTID, conversation=conv_id) is not None  # ...its own has it too
        runner = BridgeRunner(client, patience=1.0)
        turn = TurnInput("hi all", OTID, "maria", threads=OneThread(conv_id))
        recovered = [e async for e in runner.run(target, turn, NoTranscript(), journal)]
        fresh = MemoryJournal()
        fresh.otid = "5b0e4a1c-34b1-4bc4-9d55-1f6a4c1d7e10"
        turn = TurnInput("again", fresh.otid, "maria", threads=OneThread(conv_id))
        return recovered, [e async for e in runner.run(target, turn, NoTranscript(), fresh)]

    recovered, fresh = with_client(letta, body)
    assert [e.text for e in recovered if isinstance(e, AgentReply)] == ["dora says hi"]
    assert [e.text for e in fresh if isinstance(e, AgentReply)] == ["dora says hi"]
    assert len(letta.inputs) == 2 and {i.conversation for i in letta.inputs} == {conv_id}
    assert [r.path for r in letta.sends()] == [f"/v1/conversations/{conv_id}/messages"] * 2
