"""Letta 0.16.8's `ToolReturn.tool_return` is `Union[str, List[TextContent | ImageContent]]`
(letta/schemas/letta_message.py:40 of the installed 0.16.8: "either a string or list of content parts
(text/image)"), produced for a client-side tool's result given as content parts. A message of that shape is a
tool return like any other: it must not fail the whole stream or the whole history page it is in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from bridge.letta.errors import LettaError
from bridge.letta.models import MESSAGE_LIST, AssistantMessage
from bridge.letta.sse import SseEvent
from bridge.letta.stream import messages

RETURNED = {
    "id": "message-2", "date": "2026-11-25T09:27:43+00:00", "name": "screenshot",
    "message_type": "tool_return_message", "otid": "2-80", "sender_id": None, "step_id": "step-1", "is_err": None,
    "seq_id": None, "run_id": "run-1", "tool_return": "[Image: image/png]", "status": "success",
    "tool_call_id": "call_1", "stdout": None, "stderr": None,
    "tool_returns": [{
        "type": "tool", "status": "success", "tool_call_id": "call_1", "stdout": None, "stderr": None,
        "tool_return": [
            {"type": "text", "text": "here is the screen"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ],
    }],
}
SAID = {
    "id": "message-3", "date": "2026-11-25T09:27:44+00:00", "name": None, "message_type": "assistant_message",
    "otid": "3-80", "sender_id": None, "step_id": "step-2", "is_err": None, "seq_id": None, "run_id": "run-1",
    "content": "The screen shows the login page.",
}


def test_a_tool_return_given_as_content_parts_does_not_fail_the_stream() -> None:
    async def events() -> AsyncIterator[SseEvent]:
        for payload in (RETURNED, SAID, {"message_type": "stop_reason", "stop_reason": "end_turn"}):
            yield SseEvent(json.dumps(payload))
        yield SseEvent("[DONE]")

    async def go() -> list[str]:
        return [m.text async for m in messages(events(), "http://letta") if isinstance(m, AssistantMessage)]

    try:
        said = asyncio.run(go())
    except LettaError as error:
        raise AssertionError(f"the turn failed: {error.kind} {error.detail}") from None
    assert said == ["The screen shows the login page."]


def test_a_history_page_holding_such_a_tool_return_is_read() -> None:
    page = MESSAGE_LIST.validate_python([RETURNED, SAID])
    assert isinstance(page[-1], AssistantMessage)
    assert [r.tool_return for r in page[0].tool_returns] == ["here is the screen [image]"]  # type: ignore[union-attr]
