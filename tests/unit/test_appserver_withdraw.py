"""An input the bridge gives up on, or is told to stop, is taken back by name (bridge/letta/appserver/withdraw.py),
against the fake App Server (tests/fakes/appserver.py, appserver_queue.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.letta.appserver import AppServerClient, Finished, TextDelta, TurnEvent
from bridge.letta.errors import Kind, LettaError
from tests.fakes.appserver import FakeAppServer
from tests.unit.test_appserver_client import run, turn


async def thaw_after(fake: FakeAppServer, delay: float) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(fake.thaw)


def sent(fake: FakeAppServer, kind: str) -> list[dict[str, Any]]:
    return [f for f in fake.received if isinstance(f, dict) and f.get("type") == kind]


def replies(fake: FakeAppServer, conversation: str) -> list[str]:
    return [m["content"][-1]["text"] for m in fake.history_of(conversation) if m["message_type"] == "assistant_message"]


def test_an_input_accepted_after_the_bridge_gave_up_is_aborted_not_answered(fake: FakeAppServer) -> None:
    """A stalled server accepts the input late ("started") and would run it: the bridge aborts it first."""
    alice = fake.add_agent("alice", mode="slow:0.3")

    async def body(client: AppServerClient) -> str:
        conversation = await client.create_conversation(alice, "T1:C1:20.0")
        fake.freeze()
        thawing = asyncio.ensure_future(thaw_after(fake, 1.2))  # after the 1 s the bridge waits for acceptance
        with pytest.raises(LettaError) as error:
            await turn(client, alice, conversation.id, "otid-given-up")
        assert error.value.kind == Kind.TIMEOUT
        await thawing
        await asyncio.sleep(0.6)  # long after the model call returned
        return conversation.id

    conversation = run(fake, body, request_timeout=1.0)
    assert sent(fake, "abort_message"), fake.received
    assert replies(fake, conversation) == []  # the agent's answer was never written


def test_an_input_queued_after_the_bridge_gave_up_is_taken_out_of_the_queue(fake: FakeAppServer) -> None:
    """Accepted late as "queued" behind another client's turn: removed by its queue item, the turn ahead runs on."""
    bob = fake.add_agent("bob", mode="slow:1.5")

    async def body(client: AppServerClient) -> tuple[str, list[TurnEvent]]:
        other = AppServerClient(fake.url, request_timeout=5.0)
        try:
            conversation = await client.create_conversation(bob, "T1:C1:21.0")
            ahead = asyncio.ensure_future(turn(other, bob, conversation.id, "otid-ahead"))
            await asyncio.sleep(0.2)
            fake.freeze()
            thawing = asyncio.ensure_future(thaw_after(fake, 0.7))
            with pytest.raises(LettaError):
                await turn(client, bob, conversation.id, "otid-given-up", deadline=5)
            await thawing
            return conversation.id, await ahead
        finally:
            await other.aclose(wait=5.0)

    conversation, ahead = run(fake, body, request_timeout=0.5)
    assert isinstance(ahead[-1], Finished) and ahead[-1].error is None and ahead[-1].replies == ("bob says hi",)
    assert [t.cmid for t in fake.inputs] == ["otid-ahead"]  # the given-up input never reached the model
    assert [f["item_id"] for f in sent(fake, "remove_queue_item")] == ["q-1"] and not sent(fake, "abort_message")
    assert replies(fake, conversation) == ["bob says hi"]


def test_stopping_a_queued_send_leaves_the_turn_ahead_alone(fake: FakeAppServer) -> None:
    """A person's Stop (stopping.py: the conversation's abort, then the task cancelled) for a send queued behind
    another turn of the conversation takes the send out of the queue; it never aborts the turn ahead."""
    bob = fake.add_agent("bob", mode="slow:0.6")

    async def body(client: AppServerClient) -> tuple[list[TurnEvent], bool]:
        other = AppServerClient(fake.url, request_timeout=5.0)
        try:
            conversation = await client.create_conversation(bob, "T1:C1:22.0")
            ahead = asyncio.ensure_future(turn(other, bob, conversation.id, "otid-ahead"))
            await asyncio.sleep(0.1)
            queued = asyncio.ensure_future(turn(client, bob, conversation.id, "otid-stopped"))
            for _ in range(100):
                await asyncio.sleep(0.02)
                if any(t.cmid == "otid-stopped" and t.item_id for t in fake.convs[conversation.id].queue):
                    break
            aborted = await client.abort(bob, conversation.id)
            queued.cancel()
            [stopped] = await asyncio.gather(queued, return_exceptions=True)
            assert isinstance(stopped, asyncio.CancelledError), stopped
            return await ahead, aborted
        finally:
            await other.aclose(wait=5.0)

    ahead, aborted = run(fake, body)
    assert isinstance(ahead[-1], Finished) and ahead[-1].error is None, ahead[-1]
    assert ahead[-1].replies == ("bob says hi",)
    assert aborted and not sent(fake, "abort_message")
    assert [t.cmid for t in fake.inputs] == ["otid-ahead"]  # the stopped send never runs, now or later


def test_a_stop_names_the_run_once_the_server_has_given_it_an_id(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")

    async def body(client: AppServerClient) -> tuple[bool, list[TurnEvent]]:
        conversation = await client.create_conversation(alice, "T1:C1:23.0")
        events: list[TurnEvent] = []
        aborted = False
        async for event in client.send(alice, conversation.id, "hello", "otid-named"):
            events.append(event)
            if isinstance(event, TextDelta) and not aborted:  # the model has begun: the run has an id
                aborted = await client.abort(alice, conversation.id)
        return aborted, events

    aborted, events = run(fake, body)
    [abort] = sent(fake, "abort_message")
    assert abort.get("run_id") == fake.inputs[-1].run_id and aborted
    assert isinstance(events[-1], Finished) and events[-1].stop_reason == "cancelled"

