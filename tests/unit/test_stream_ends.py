"""How a Letta stream's end is read: a run that Letta ends `failed` or `cancelled` is never a finished reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bridge.letta.errors import SERVER_WIDE, Kind, LettaError
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
        # 0.16.8 calls the run completed, but the agent stopped mid-answer: its steps (50 a message) were used up
        ("max_steps", "every step"),
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
    assert error.kind in (Kind.RUN_FAILED, Kind.QUOTA) and words in error.detail


def test_a_normal_end_and_an_approval_stop_are_not_failures() -> None:
    for reason in ("end_turn", "tool_rule", "requires_approval"):
        _, error = read(SAID, {"message_type": "stop_reason", "stop_reason": reason}, USAGE, "[DONE]")
        assert error is None, reason


def test_the_same_out_of_credits_is_said_alike_streamed_or_not() -> None:
    """Every Letta Cloud send streams. Its credits running out between two steps was said as a passing failure ("Ask
    again in a moment"), where the same condition as an HTTP 402 is the operator's to fix; and the next agents of
    the turn were asked, each failing alike after a first step that may use more of the account."""
    _, streamed = read(SAID, {"message_type": "stop_reason", "stop_reason": "insufficient_credits"}, USAGE, "[DONE]")
    assert streamed is not None
    assert streamed.kind in SERVER_WIDE, streamed.kind
    plain = LettaError(Kind.QUOTA, "Insufficient credits for LLM request.", status=402, base_url="https://api.letta.com")
    assert "asking again will not help" in plain.explain("finn")
    said = streamed.explain("finn")
    assert "Ask again in a moment" not in said and "operator" in said and "asking again will not help" in said, said
    assert said.startswith("Letta started finn's answer"), said  # its first step (some words, too) may be stored


@pytest.mark.parametrize("reason", ["insufficient_credits", "context_window_overflow_in_system_prompt"])
def test_a_stream_stopped_for_a_lasting_reason_does_not_invite_asking_again(reason: str) -> None:
    _, error = read(SAID, {"message_type": "stop_reason", "stop_reason": reason}, USAGE, "[DONE]")
    assert error is not None
    said = error.explain("finn")
    assert "Ask again in a moment" not in said and "Letta started finn's answer" in said, said

