"""0.11.7 token-streams a tool call in fragments where only the FIRST carries `tool_call_id` (and the name); the
rest carry only more arguments (capture 0.11.7/groups-stream-tokens-supervisor.json). The call is one call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

from bridge.letta.models import LettaMessage
from bridge.letta.notes import NoteTaker
from bridge.letta.sse import sse_events
from bridge.letta.stream import messages
from bridge.letta.toolprogress import ToolWatch
from tests.reference import LETTA, load


def captured(name: str) -> list[LettaMessage]:
    body = load(LETTA / name)["response"]["body_raw"].encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def go() -> list[LettaMessage]:
        return [m async for m in messages(sse_events(chunks()), "http://letta")]

    return asyncio.run(go())


def test_a_token_streamed_tool_call_is_one_note_with_its_name_and_arguments() -> None:
    notes = NoteTaker()
    for message in captured("0.11.7/groups-stream-tokens-supervisor.json"):
        notes.add(message, getattr(message, "name", None) or "group")
    tools = [n.text for n in notes.pop("mgr_sup") if n.kind == "tool"]
    assert len(tools) == 1, tools
    assert tools[0].startswith("send_message_to_all_agents_in_group(") and "please say hi" in tools[0], tools


def test_a_token_streamed_tool_call_shows_as_one_call_that_ends_done() -> None:
    watch = ToolWatch()
    moves = []
    for message in captured("0.11.7/groups-stream-tokens-supervisor.json"):
        moves += watch.add(message, getattr(message, "name", None) or "group")
    last = {}
    for _, progress in moves:
        last[progress.call_id if hasattr(progress, "call_id") else progress[0]] = progress
    assert len(last) == 1, moves
    (only,) = last.values()
    assert only.state == "done" and only.name == "send_message_to_all_agents_in_group", moves


def test_the_supervisors_reply_carries_one_tool_note_through_exchange() -> None:
    from bridge.letta.exchange import Said, exchange

    frames = captured("0.11.7/groups-stream-tokens-supervisor.json")

    class Client:
        no_stream_route: ClassVar[set[str]] = set()
        base_url = "http://letta"

        async def stream_group(self, *args: object, **kwargs: object) -> AsyncIterator[LettaMessage]:
            for message in frames:
                yield message

    async def go() -> list[Said]:
        return [
            s async for s in exchange(Client(), {}, "group", True, group=("group-1", []), tokens=True)  # type: ignore[arg-type]
            if isinstance(s, Said)
        ]

    said = {s.author: s for s in asyncio.run(go())}
    tools = [n.text for n in said["mgr_sup"].notes if n.kind == "tool"]
    assert tools == [
        'send_message_to_all_agents_in_group({"message":" mgr_sup asks the team: please say hi",'
        '"request_heartbeat":" false}) → success'
    ], tools
