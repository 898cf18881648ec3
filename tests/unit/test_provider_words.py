"""bridge/letta/stream.py `provider_words`: a model provider's failure as 0.11.x words it (its body a Python repr)
reaches the thread as the provider's message, not as a printed dict."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st

from bridge.domain import AgentFailure, AgentRef, Target, TurnEvent
from bridge.letta.client import LettaClient
from bridge.letta.stream import provider_words
from tests.fakes.letta import FakeLetta
from tests.reference import LETTA
from tests.unit.test_patterns import MemoryJournal
from tests.unit.test_send_recovery import play

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def failures(version: str, capture: str) -> tuple[list[str], int]:
    response = json.loads((LETTA / version / f"{capture}.json").read_text())["response"]
    with FakeLetta(version=version) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.fail_next(
            "POST", r"/v1/agents/[^/]+/messages(/stream)?", response["status"], raw=response["body_raw"].encode(),
            headers=SSE,
        )

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url, retry_base=0.0)
            try:
                return await play(client, target, MemoryJournal())
            finally:
                await client.aclose()

        events = asyncio.run(go())
        return [e.message for e in events if isinstance(e, AgentFailure)], len(letta.sends())


def test_a_provider_failure_on_0_11_7_is_said_by_its_message_once() -> None:
    for capture in ("llm500-agents-stream", "llm500-agents-stream-tokens"):
        [text], sends = failures("0.11.7", capture)
        assert sends == 1
        assert "alice" in text and "OpenAI API error (HTTP 500): fake upstream failure" in text, text
        assert "{'error'" not in text and "None" not in text and "INTERNAL_SERVER_ERROR" not in text, text


def test_words_without_a_provider_body_are_kept() -> None:
    assert provider_words("INTERNAL_SERVER_ERROR: upstream") == "INTERNAL_SERVER_ERROR: upstream"
    body = "Error code: 500 - {'error': {'code': None}}"
    assert provider_words(body) == body, "no message in the body: the words as they came"
    assert provider_words("x: Error code: 500 - {'error': __import__('os')}").startswith("x: Error code")
    assert provider_words("Error code: 429 - {'error': {'message': 'slow\\n down'}}") == (
        "the model provider failed (HTTP 429): slow down"
    )


@given(st.text(max_size=300))
def test_any_words_give_words(text: str) -> None:
    said = provider_words(text)
    assert isinstance(said, str) and (said == text or "(HTTP " in said)
