"""An event-stream block with no `data:` line (only `retry:`, `id:` or `event:`), or a blank line after an `id:`,
is no message: the WHATWG format says a block whose data buffer is empty dispatches nothing. It must not fail the
turn with 'a stream event was not JSON'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.letta.errors import LettaError
from bridge.letta.models import AssistantMessage
from bridge.letta.sse import sse_events
from bridge.letta.stream import messages

SAID = b'data: {"message_type":"assistant_message","id":"message-1","otid":"1-80","content":"hello"}\n\n'
END = b'data: {"message_type":"stop_reason","stop_reason":"end_turn"}\n\ndata: [DONE]\n\n'


def read(body: bytes) -> list[str]:
    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def go() -> list[str]:
        return [m.text async for m in messages(sse_events(chunks()), "http://letta") if isinstance(m, AssistantMessage)]

    return asyncio.run(go())


@pytest.mark.parametrize(
    "extra",
    [
        b"retry: 3000\n\n",  # a reconnection time alone (what a proxy or SSE library may send first)
        b"id: 1\n" + SAID[:-1] + b"\n\n",  # an id, then a second blank line: nothing new to dispatch
        b"event: ping\n\n",  # a named event with no data
    ],
)
def test_a_block_without_data_is_not_a_message_and_does_not_fail_the_turn(extra: bytes) -> None:
    try:
        got = read(extra + SAID + END)
    except LettaError as error:
        pytest.fail(f"the turn failed: {error.kind} {error.detail}")
    assert got[-1] == "hello"
