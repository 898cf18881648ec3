"""bridge/letta/appserver_runner.py: a socket dropped mid-turn before any text reached the bridge. The server
ends the turn and keeps what the model had written so far (capture ws-disconnect-mid-turn-no-reconnect.json:
socket a got no text, history holds 'bob '). The runner finds it by otid and posts it, saying it may be only
part of the answer; before, the stub was posted as the agent's whole reply. A send found after a restart gives
the thread a new conversation with that agent, whose first message then carries the thread so far."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentFailure, AgentRef, AgentReply, StepRecord, Target, TurnInput
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.appserver_runner import AppServerRunner
from bridge.slack.directory import Earlier
from bridge.store import open_store
from bridge.threads import ThreadConversations
from bridge.turn_input import THREAD_HISTORY_HEADER, thread_context
from tests.fakes.appserver import FakeAppServer
from tests.quoting import read
from tests.unit.test_patterns import MemoryJournal, NoTranscript


class Journal:
    otid = "otid-cut-1"

    def __init__(self) -> None:
        self.answered_with: Any = None

    async def sending(self, key: str) -> None:
        pass

    async def answered(self, key: str, replies: Any, failure: Any, upto: Any) -> None:
        self.answered_with = (replies, failure)


class Transcript:
    async def unseen(self, agent_id: str) -> tuple[list[Any], int | None]:
        return [], None


class Threads:
    def __init__(self, conversation: str) -> None:
        self.conv = conversation

    async def conversation(self, agent_id: str) -> str:
        return self.conv

    async def renew(self, agent_id: str, gone: str) -> str:
        raise AssertionError("not expected")

    async def earlier(self, agent_id: str) -> str:
        return ""

    def fresh(self, agent_id: str) -> bool:
        return False


def dave_dropped(mode: str, after: float) -> list[Any]:
    """dave, in `mode`, asked once; the server drops every socket `after` seconds into his turn: the turn's events."""
    fake = FakeAppServer(scale=0.001)
    fake.start()
    dave = fake.add_agent("dave", mode=mode)

    async def main() -> list[Any]:
        letta = AppServerLetta(fake.url)
        try:
            conv = await letta.app.create_conversation(dave, "T:C:1.0")
            turn = TurnInput(text="hello", otid=Journal.otid, sender="u", threads=Threads(conv.id))
            asking = asyncio.ensure_future(
                AppServerRunner(letta, deadline=30).ask(
                    AgentRef(dave, "dave"), turn, Transcript(), Journal(), dave, None, None  # type: ignore[arg-type]
                )
            )
            await asyncio.sleep(after)
            fake.drop_connections()
            return await asyncio.wait_for(asking, 10)
        finally:
            await letta.aclose(wait=1)

    try:
        return asyncio.run(main())
    finally:
        fake.stop()


def test_a_reply_found_after_a_drop_is_posted_with_word_that_it_may_be_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "random", lambda: 1.0)  # reconnect after backoff_base (0.5 s): past the model call
    events = dave_dropped("slow:0.3", 0.1)  # before the model's first chunk: the bridge has received no text
    replies = [e for e in events if isinstance(e, AgentReply)]
    failures = [e for e in events if isinstance(e, AgentFailure)]
    assert [r.text for r in replies] == ["dave"], "what the server kept is posted"
    [failure] = failures
    assert "dropped while dave was answering" in failure.message and "part of the answer" in failure.message


def test_a_conversation_renewed_after_a_restart_gives_the_threads_next_turn_the_thread_so_far(tmp_path: Path) -> None:
    """The bridge was killed after hal's send reached the server: the resumed turn finds it by otid and the thread
    gets a new conversation with hal (the old one is stuck on 0.34.12). That conversation starts empty, so the
    thread's next turn tells hal what was said before, once."""
    fake = FakeAppServer(scale=0.001)
    fake.start()
    hal = fake.add_agent("hal")
    target = Target("agents", (AgentRef(hal, "hal"),))
    so_far = [Earlier("U1", "maria", "go", ts="1.0"), Earlier("", "", "hal says hi", ts="1.1")]

    async def history() -> str:
        return thread_context(so_far, ["hal"], {"1.1": ("hal", "hal says hi")}, THREAD_HISTORY_HEADER)

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        letta = AppServerLetta(fake.url)
        runner = AppServerRunner(letta, deadline=30)

        async def turn(text: str, journal: MemoryJournal, resumed: bool = False) -> None:
            threads = ThreadConversations(store, letta, "T1", "C1", "1.0", history)  # one per turn, as turns.py
            said = TurnInput(text, journal.otid, "maria", threads=threads)
            events = [e async for e in runner.run(target, said, NoTranscript(), journal)]
            [reply] = [e for e in events if isinstance(e, AgentReply)]
            assert reply.text == "hal says hi"
            # resumed: the server may have cut the answer when the killed process's socket closed, so it says so
            failures = [e for e in events if isinstance(e, AgentFailure)]
            assert [f.message.startswith("The bridge stopped while hal") for f in failures] == [True] * resumed

        try:
            killed = MemoryJournal()
            await turn("go", killed)
            killed.steps[hal] = StepRecord("sending")  # what the killed process's journal said
            await turn("go", killed, resumed=True)  # resumed: found by its otid, not sent again
            for text, otid in (("and then?", "5b0e4a1c-34b1-4bc4-9d55-1f6a4c1d7e10"),
                               ("and now?", "6c1f5b2d-45c2-4cd5-8e66-2a7b5d2e8f21")):
                later = MemoryJournal()
                later.otid = otid
                await turn(text, later)
        finally:
            await letta.aclose(wait=1)
            await store.close()

    try:
        asyncio.run(main())
    finally:
        fake.stop()
    first, renewed, after = [(t.conversation, read(t.text)) for t in fake.inputs]
    assert renewed[0] != first[0] and after[0] == renewed[0]  # nobody asked twice; the next turn in a new one
    blocks = dict(renewed[1].blocks)
    assert blocks[THREAD_HISTORY_HEADER] == [("person", "maria", "go"), ("agent", "hal", "hal says hi")]
    assert renewed[1].own[-1] == "and then?"
    assert after[1].blocks == [] and after[1].own == ["and now?"]  # once


def test_a_conversation_made_for_the_thread_reads_an_earlier_groupmates_reply_once() -> None:
    """After hal's conversation was made again (stuck after a drop), bob's reply was in the thread so far and
    among the group's replies hal had not seen: hal's first message quoted it twice."""
    fake = FakeAppServer(scale=0.001)
    fake.start()
    hal = fake.add_agent("hal")
    bob = AgentReply("bob", "bob says hi", "agent-bob")
    so_far = [Earlier("U1", "maria", "go", ts="1.0"), Earlier("", "", bob.text, ts="1.1")]
    earlier = thread_context(so_far, ["hal", "bob"], {"1.1": ("bob", bob.text)}, THREAD_HISTORY_HEADER)

    class Owed(Threads):
        async def earlier(self, agent_id: str) -> str:
            return earlier

    class Unseen(Transcript):
        async def unseen(self, agent_id: str) -> tuple[list[Any], int | None]:
            return [bob], 1

    async def main() -> None:
        letta = AppServerLetta(fake.url)
        try:
            conv = await letta.app.create_conversation(hal, "T:C:1.0")
            turn = TurnInput(text="and now?", otid=Journal.otid, sender="u", threads=Owed(conv.id))
            await AppServerRunner(letta, deadline=30).ask(
                AgentRef(hal, "hal"), turn, Unseen(), Journal(), hal, None, None  # type: ignore[arg-type]
            )
        finally:
            await letta.aclose(wait=1)

    try:
        asyncio.run(main())
    finally:
        fake.stop()
    [sent] = [read(t.text) for t in fake.inputs]
    quoted_bob = [entry for _, entries in sent.blocks for entry in entries if entry[0] == "agent"]
    assert quoted_bob == [("agent", "bob", "bob says hi")], sent.blocks
    assert sent.own[-1] == "and now?"


def test_the_threads_next_turn_after_a_deadline_does_not_wait_behind_the_model_call_it_left(tmp_path: Path) -> None:
    """A model call past the turn's deadline: the input was taken back, but the server runs the conversation's next
    input only once that call returns (README §8). The thread's next message queued behind it and failed as well,
    each time, for as long as the model hung."""
    fake = FakeAppServer(scale=0.001)
    fake.start()
    hal = fake.add_agent("hal", mode="slow:3")
    target = Target("agents", (AgentRef(hal, "hal"),))

    async def main() -> tuple[list[Any], list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        letta = AppServerLetta(fake.url)
        letta.app.abort_wait = 0.5  # the bridge lets go of the taken-back turn before the model call returns
        runner = AppServerRunner(letta, deadline=1.0)

        async def turn(text: str, otid: str) -> list[Any]:
            threads = ThreadConversations(store, letta, "T1", "C1", "1.0")
            journal = MemoryJournal()
            journal.otid = otid
            said = TurnInput(text, otid, "maria", threads=threads)
            return [e async for e in runner.run(target, said, NoTranscript(), journal)]

        try:
            first = await turn("go", "7d2a6c3e-56d3-4de6-9f77-3b8c6e3f9a32")
            fake.call(fake.modes.__setitem__, hal, "ok")
            return first, await turn("again?", "8e3b7d4f-67e4-4ef7-a088-4c9d7f4a0b43")
        finally:
            await letta.aclose(wait=1)
            await store.close()

    try:
        first, second = asyncio.run(main())
    finally:
        fake.stop()
    assert [type(e).__name__ for e in first] == ["AgentFailure"], first
    assert [e.text for e in second if isinstance(e, AgentReply)] == ["hal says hi"], second


def test_a_new_conversation_whose_first_send_was_refused_is_left_and_the_next_gets_the_thread(tmp_path: Path) -> None:
    """revBO on the App Server: the server refused hal's first send into the thread's new conversation (nothing
    stored). The empty conversation stayed the thread's, so the next turn was sent there without the question or
    the thread so far."""
    fake = FakeAppServer(scale=0.001)
    fake.start()
    hal = fake.add_agent("hal")
    fake.refuse.append("input refused")
    target = Target("agents", (AgentRef(hal, "hal"),))
    so_far = f'{THREAD_HISTORY_HEADER}\n{{"person": "maria", "text": "the plan"}}\n\n'
    turns = [
        ("7d2a6c3e-56d3-4de6-9f77-3b8c6e3f9a32", "the plan", ""),
        ("8e3b7d4f-67e4-4ef7-a088-4c9d7f4a0b43", "and then?", so_far),
    ]

    async def main() -> list[str | None]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        letta = AppServerLetta(fake.url)
        runner = AppServerRunner(letta, deadline=30)
        kept = []
        try:
            for otid, words, earlier in turns:

                async def history(earlier: str = earlier) -> str:
                    return earlier  # empty on the thread's first turn: its question is in the turn's own words

                threads = ThreadConversations(store, letta, "T1", "C1", "1.0", history)
                journal = MemoryJournal()
                journal.otid = otid
                said = TurnInput(words, otid, "maria", threads=threads)
                [e async for e in runner.run(target, said, NoTranscript(), journal)]
                kept.append(await store.conversation(("T1", "C1", "1.0"), hal))
            return kept
        finally:
            await letta.aclose(wait=1)
            await store.close()

    try:
        refused, answered = asyncio.run(main())
    finally:
        fake.stop()
    assert refused is None, "the refused first send's empty conversation was kept as the thread's"
    [delivered] = fake.inputs
    assert delivered.conversation == answered and delivered.text.count("the plan") == 1, delivered.text


def test_a_reply_cut_by_a_drop_mid_answer_is_said_to_be_cut_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket dropped after part of dave's reply had come: the part was posted, then "the answer may be lost.
    Ask again if nothing follows", which read oddly under the words that did come."""
    monkeypatch.setattr(random, "random", lambda: 1.0)
    events = dave_dropped("drip:0.4", 0.6)  # a word every 0.4 s: "dave " and "says " came
    [reply] = [e for e in events if isinstance(e, AgentReply)]
    [failure] = [e for e in events if isinstance(e, AgentFailure)]
    assert reply.text.startswith("dave") and reply.text != "dave says hi"
    assert "answer above is cut off" in failure.message and "may be lost" not in failure.message, failure.message


class KeepsFirstChunk(FakeAppServer):
    """As observed on 0.34.12 (docs/app-server.md, tests/real/test_appserver_withdraw_real.py): a turn aborted during
    its model call often keeps the reply's first chunk in history."""

    async def _cancelled(self, conv: Any, turn: Any, runtime: Any, first_chunk: str) -> None:
        if not turn.cut and first_chunk:
            self._store(conv, "assistant", first_chunk)
        await super()._cancelled(conv, turn, runtime, first_chunk)


def test_a_deadline_is_not_said_as_a_dropped_connection(tmp_path: Path) -> None:
    """The bridge took the message back at its deadline: said as no answer in time, and the stub the server kept is
    no answer to post (it was posted as the reply, and the thread told the connection had dropped)."""
    fake = KeepsFirstChunk(scale=0.001, hang_release=0.2)
    fake.start()
    dave = fake.add_agent("dave", mode="hang")
    target = Target("agents", (AgentRef(dave, "dave"),))

    async def main() -> list[Any]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        letta = AppServerLetta(fake.url)
        runner = AppServerRunner(letta, deadline=0.5)
        try:
            threads = ThreadConversations(store, letta, "T1", "C1", "1.0")
            journal = MemoryJournal()
            journal.otid = "7d2a6c3e-56d3-4de6-9f77-3b8c6e3f9a32"
            said = TurnInput("hello", journal.otid, "maria", threads=threads)
            return [e async for e in runner.run(target, said, NoTranscript(), journal)]
        finally:
            await letta.aclose(wait=1)
            await store.close()

    try:
        events = asyncio.run(main())
    finally:
        fake.stop()
    replies = [e.text for e in events if isinstance(e, AgentReply)]
    [failure] = [e for e in events if isinstance(e, AgentFailure)]
    assert "dropped" not in failure.message, (replies, failure.message)
    assert "in time" in failure.message or "deadline" in failure.message, failure.message
