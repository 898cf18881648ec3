"""An agent whose new thread conversation's first send failed (Letta refused it: nothing reached the agent) gets
the thread so far with its next send. Before, the conversation stayed stored and was taken to hold the thread: the
agent answered from then on without any of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnInput
from bridge.letta import bridge_runner
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.patterns import speak
from bridge.store import open_store
from bridge.threads import ThreadConversations
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import MemoryJournal, NoTranscript

OTID = "2988596c-00b3-45b5-a8bc-ace1e823ddc3"
HISTORY = (
    "Earlier in this Slack thread, before this conversation of yours began:\n"
    '{"person": "maria", "text": "the plan"}\n\n'
)


def test_a_new_conversation_whose_first_send_failed_still_gets_the_thread_so_far_next_turn(
    letta: FakeLetta, tmp_path: Path
) -> None:
    dora = letta.add_agent("dora")
    target = Target("agents", (AgentRef(dora, "dora"),))
    # Letta refuses the thread's first send to the new conversation (a passing failure): nothing reached the agent.
    letta.fail_next(
        "POST", r"/v1/conversations/[^/]+/messages(/stream)?", 503, body={"detail": "Service Unavailable"}, times=1
    )

    async def history() -> str:
        return HISTORY

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url, retry_base=0.01)  # type: ignore[arg-type]
        try:
            runner = BridgeRunner(client, patience=1.0)
            replies = []
            for otid, words in [("2988596c-00b3-45b5-a8bc-ace1e823ddc3", "first"),
                                ("5b0e4a1c-34b1-4bc4-9d55-1f6a4c1d7e10", "second")]:
                journal = MemoryJournal()
                journal.otid = otid
                threads = ThreadConversations(store, client, "T1", "C1", "1.0", history)  # one per turn
                turn = TurnInput(words, otid, "maria", threads=threads)
                events = [e async for e in runner.run(target, turn, NoTranscript(), journal)]
                replies.append([e.text for e in events if isinstance(e, AgentReply)])
            return replies  # type: ignore[return-value]
        finally:
            await client.aclose()
            await store.close()

    replies = asyncio.run(main())
    assert replies[0] == [] and replies[1] == ["dora says hi"], replies
    [delivered] = letta.inputs
    assert "the plan" in delivered.text, (
        "the agent's new conversation never got the thread so far: " + delivered.text
    )


def test_a_new_conversation_whose_first_send_carried_only_the_turns_own_words_is_left_when_refused(
    letta: FakeLetta, tmp_path: Path
) -> None:
    """revBO: the thread's first turn, whose question (and thread context) is in the turn's own text, not in the
    thread so far. Its refused first send left the empty conversation stored: the next turn was taken to be sent
    where the question already was, and the agent never got it."""
    dora = letta.add_agent("dora")
    letta.fail_next(
        "POST", r"/v1/conversations/[^/]+/messages(/stream)?", 503, body={"detail": "Service Unavailable"}, times=1
    )
    refused, answered = _question_then_follow_up(letta, tmp_path, dora)
    assert refused is None, "the refused first send's empty conversation was kept as the thread's"
    [delivered] = letta.inputs
    assert delivered.conversation == answered and delivered.text.count("the plan") == 1, delivered.text
    assert list(letta.conversations) == [answered]  # the empty one deleted on Letta, not left behind


def test_a_later_failed_send_of_the_turn_does_not_discard_the_conversation_that_got_the_thread(
    letta: FakeLetta, tmp_path: Path
) -> None:
    """A dynamic group's speaker asked twice in one turn: its first send carried the thread so far and was
    answered, its second Letta refused. The conversation holding the thread and its first answer stays the thread's
    (it was left and deleted on Letta, as if the first send had never arrived)."""
    dora = letta.add_agent("dora")
    agent = AgentRef(dora, "dora")

    async def history() -> str:
        return "Earlier in this Slack thread:\n{\"person\": \"maria\", \"text\": \"the plan\"}\n\n"

    async def main() -> tuple[list, list, str | None, str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url, retry_base=0.01)  # type: ignore[arg-type]
        try:
            runner = BridgeRunner(client, patience=1.0)
            journal = MemoryJournal()
            journal.otid = OTID
            threads = ThreadConversations(store, client, "T1", "C1", "1.0", history)
            turn = TurnInput("hi", OTID, "maria", threads=threads)
            first = await speak(runner, agent, turn, NoTranscript(), journal, dora)
            made = await store.conversation(("T1", "C1", "1.0"), dora)
            letta.fail_next(
                "POST", r"/v1/conversations/[^/]+/messages(/stream)?", 503, body={"detail": "Service Unavailable"}
            )
            second = await speak(runner, agent, turn, NoTranscript(), journal, f"{dora}#2")
            kept = await store.conversation(("T1", "C1", "1.0"), dora)
            return first, second, made, kept
        finally:
            await client.aclose()
            await store.close()

    first, second, made, kept = asyncio.run(main())
    assert [e.text for e in first if isinstance(e, AgentReply)] == ["dora says hi"], first
    assert any(isinstance(e, AgentFailure) for e in second), second
    assert "the plan" in letta.inputs[0].text  # the first send carried the thread so far
    assert kept == made, (
        f"the thread's conversation {made}, which holds the thread so far and dora's answer, was left ({kept})"
    )
    assert made in letta.conversations, "the conversation holding the thread was deleted on Letta"


def test_a_new_conversation_whose_first_send_was_never_made_is_left(
    letta: FakeLetta, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """revBP: the conversation was made, then the send refused before it was made (the resume-route probe met a
    gateway's 502): the empty conversation stayed the thread's, and the agent never got the thread's question."""
    dora = letta.add_agent("dora")
    # The probe that tells whether background runs are resumable (asked before the process's first send) meets a
    # passing gateway failure, asked once and not kept (the follow-up asks again): the send waiting on it is not made.
    monkeypatch.setattr(bridge_runner, "PROBE_AGAIN", ())
    monkeypatch.setattr(bridge_runner, "PROBE_FRESH", 0.0)
    letta.fail_next("POST", r"/v1/conversations/default/stream", 502, body={"detail": "Bad Gateway"}, times=1)
    refused, answered = _question_then_follow_up(letta, tmp_path, dora)
    [delivered] = letta.inputs  # the first turn reached nothing
    assert "the plan" in delivered.text, f"the agent never got the thread's question: {delivered.text!r}"
    assert refused is None, "the never-sent-to conversation was kept as the thread's"
    assert answered is not None  # the one the question went to


def _question_then_follow_up(letta: FakeLetta, tmp_path: Path, agent: str) -> list[str | None]:
    """The thread's first turn ("what is the plan?") then a follow-up, each a fresh runner turn as a process runs
    it; the agent's conversation stored for the thread after each."""
    target = Target("agents", (AgentRef(agent, "dora"),))
    turns = [(OTID, "what is the plan?", ""), ("5b0e4a1c-34b1-4bc4-9d55-1f6a4c1d7e10", "and then?", HISTORY)]

    async def main() -> list[str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = LettaClient(letta.base_url, retry_base=0.01)  # type: ignore[arg-type]
        try:
            runner = BridgeRunner(client, patience=1.0)
            kept = []
            for otid, words, so_far in turns:
                journal = MemoryJournal()
                journal.otid = otid

                async def history(so_far: str = so_far) -> str:
                    return so_far  # empty on the thread's first turn: nothing came before it

                threads = ThreadConversations(store, client, "T1", "C1", "1.0", history)
                turn = TurnInput(words, otid, "maria", threads=threads)
                [e async for e in runner.run(target, turn, NoTranscript(), journal)]
                kept.append(await store.conversation(("T1", "C1", "1.0"), agent))
            return kept
        finally:
            await client.aclose()
            await store.close()

    return asyncio.run(main())
