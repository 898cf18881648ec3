"""Self-tests of the fake App Server where it once answered otherwise than the real one, each against its capture
(reference/letta/app-server/)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.appserver import FakeAppServer
from tests.reference import APP_SERVER, load


@pytest.fixture
def fake() -> Iterator[FakeAppServer]:
    server = FakeAppServer(scale=0.001)
    server.start()
    yield server
    server.stop()


async def _exchange(url: str, frames: list[dict[str, Any]], until: str) -> list[dict[str, Any]]:
    """Send the frames on one socket; every frame received until one of type `until`."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as ws:
        for frame in frames:
            await ws.send_str(json.dumps(frame))
        async with asyncio.timeout(5):
            while not got or got[-1]["type"] != until:
                got.append(json.loads((await ws.receive()).data))
    return got


def _said(frames: list[dict[str, Any]]) -> tuple[str, set[str]]:
    """The assistant's text and the agent ids its deltas carry."""
    deltas = [f["delta"] for f in frames if f["type"] == "stream_delta"
              and f["delta"].get("message_type") == "assistant_message"]
    return "".join(c["text"] for d in deltas for c in d["content"]), {d["agent_id"] for d in deltas}


def test_an_input_naming_another_agent_is_answered_by_the_conversations_agent(fake: FakeAppServer) -> None:
    capture = load(APP_SERVER / "ws-input-agent-conversation-mismatch.json")
    sent = next(f["json"] for f in capture["frames"] if f["dir"] == "sent")
    real = [f["json"] for f in capture["frames"] if f["dir"] == "received"]
    real_text, real_agents = _said(real)
    assert real_agents != {sent["runtime"]["agent_id"]} and real_text == "alice says hi"  # the conversation's agent
    alice, bob = fake.add_agent("alice"), fake.add_agent("bob")
    create = {"type": "conversation_create", "request_id": "cc-1", "body": {"agent_id": alice}}
    conv = asyncio.run(_exchange(fake.url, [create], "conversation_create_response"))[-1]["conversation"]["id"]
    frame = {**sent, "runtime": {"agent_id": bob, "conversation_id": conv}}
    got = asyncio.run(_exchange(fake.url, [frame], "turn_finished"))
    assert _said(got) == ("alice says hi", {alice})
    assert got[-1]["stop_reason"] == "end_turn" and got[-1]["runtime"] == frame["runtime"]


def test_a_conversation_for_an_unknown_or_deleted_agent_is_refused(fake: FakeAppServer) -> None:
    """The fake made a conversation for any agent id; 0.34.12 refuses one that does not exist, or no longer does
    (tests/real/test_appserver_real.py checks the words on a real server)."""
    missing = "agent-local-6d8df22e-8027-4e0f-a69e-113e9a94f4c1"
    gone = fake.add_agent("gone")
    delete = {"type": "agent_delete", "request_id": "d1", "agent_id": gone}
    [deleted] = asyncio.run(_exchange(fake.url, [delete], "agent_delete_response"))
    assert deleted == {"type": "agent_delete_response", "request_id": "d1", "success": True, "agent_id": gone}
    for agent in (missing, gone):
        create = {"type": "conversation_create", "request_id": "x1", "body": {"agent_id": agent, "summary": "k1"}}
        [answer] = asyncio.run(_exchange(fake.url, [create], "conversation_create_response"))
        assert answer == {"type": "conversation_create_response", "request_id": "x1", "success": False,
                          "conversation": None, "error": f"Agent {agent} not found"}
    assert fake.convs == {}


def test_an_update_of_an_unknown_conversation_is_refused_in_words(fake: FakeAppServer) -> None:
    """The fake's handler raised KeyError and closed the socket without an answer; 0.34.12 answers."""
    update = {"type": "conversation_update", "request_id": "x2", "conversation_id": "local-conv-999",
              "body": {"summary": "k"}}
    [answer] = asyncio.run(_exchange(fake.url, [update], "conversation_update_response"))
    assert answer == {"type": "conversation_update_response", "request_id": "x2", "success": False,
                      "conversation": None, "error": "Conversation local-conv-999 not found"}
