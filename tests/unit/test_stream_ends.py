"""How a Letta stream's end is read: a run that Letta ends `failed` or `cancelled` is never a finished reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import AssistantMessage, LettaMessage
from bridge.letta.sse import SseEvent
from bridge.letta.stream import messages

SAID = {
    "id": "message-1", "date": "2026-11-25T09:27:43+00:00", "name": None, "message_type": "assistant_message",
    "otid": "1-80", "sender_id": None, "step_id": "step-1", "is_err": None, "seq_id": None, "run_id": "run-1",
    "content": "The first half of the answer",
}
USAGE = {"message_type": "usage_statistics", "completion_tokens": 7, "prompt_tokens": 11, "total_tokens": 18}


def read(*payloads: object) -> tuple[list[LettaMessage], LettaError | None]:
    async def events() -> AsyncIterator[SseEvent]:
        for payload in payloads:
            yield SseEvent(payload if isinstance(payload, str) else json.dumps(payload))

    async def go() -> tuple[list[LettaMessage], LettaError | None]:
        got: list[LettaMessage] = []
        try:
            async for message in messages(events(), "http://letta"):
                got.append(message)
        except LettaError as error:
            return got, error
        return got, None

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        # letta_agent_v3: the model's output hit its max_tokens (finish_reason "length"): the words are cut short
        ("max_tokens_exceeded", "cut short"),
        # Letta Cloud: the account's credits ran out between two steps of the answer
        ("insufficient_credits", "credits"),
        # a cancel from anywhere (the ADE, another client): the run ends `cancelled` (reference section 16)
        ("cancelled", "cancelled"),
    ],
)
def test_a_run_letta_ends_failed_or_cancelled_after_some_words_is_a_failure_not_a_finished_reply(
    reason: str, words: str
) -> None:
    """0.16.8's StopReasonType.run_status makes these runs `failed` (or `cancelled`); the bridge read their stop
    reason as a normal end and posted the words so far as the agent's whole reply."""
    got, error = read(SAID, {"message_type": "stop_reason", "stop_reason": reason}, USAGE, "[DONE]")
    assert [m.content for m in got if isinstance(m, AssistantMessage)] == ["The first half of the answer"]
    assert error is not None, f"stop reason {reason} was read as a finished reply"
    assert error.kind == Kind.RUN_FAILED and words in error.detail


def test_a_normal_end_and_an_approval_stop_are_not_failures() -> None:
    for reason in ("end_turn", "max_steps", "tool_rule", "requires_approval"):
        _, error = read(SAID, {"message_type": "stop_reason", "stop_reason": reason}, USAGE, "[DONE]")
        assert error is None, reason
