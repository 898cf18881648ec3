"""A background run's stream cut mid-reply (a connection reset, a proxy's idle timeout) on a server that keeps runs
resumable (0.16.8 with Redis, Letta Cloud): picked up after the last `seq_id` received, never sent again; the
reply's words neither lost nor said twice."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    ApprovalRequest,
    Decision,
    Target,
    TurnEvent,
    TurnInput,
)
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.approving import ApproveAll
from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

REPLY = "alice thinks the answer is forty two"
SEND = re.compile(rb"^POST /v1/conversations/[^/ ]+/messages ", re.MULTILINE)


class Cutter:
    """A relay in front of the fake Letta that resets the connection of the first conversation send once `after`
    SSE frames of its answer have reached the client, as a proxy's timeout or a reset does."""

    def __init__(self, upstream: int, after: int, on_cut: Callable[[], None] = lambda: None, nth: int = 1) -> None:
        self.upstream, self.after, self.cut, self.on_cut = upstream, after, False, on_cut
        self.nth = nth  # which conversation send is cut (1: the first)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        armed = asyncio.Event()

        async def to_letta() -> None:
            while chunk := await reader.read(65536):
                if not self.cut and SEND.search(chunk):
                    self.nth -= 1
                    if self.nth == 0:
                        armed.set()
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            frames = 0
            while chunk := await up_reader.read(65536):
                if armed.is_set() and not self.cut:
                    for frame in re.split(rb"(?<=\n\n)", chunk):
                        frames += frame.count(b"data: ")
                        writer.write(frame)
                        if frames >= self.after:
                            self.cut = True
                            self.on_cut()
                            await writer.drain()
                            writer.transport.abort()
                            up_writer.transport.abort()
                            return
                else:
                    writer.write(chunk)
                await writer.drain()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(to_letta(), to_client())
        writer.close()
        up_writer.close()


def _cut_turn(letta: FakeLetta, on_cut: Callable[[], None] = lambda: None) -> tuple[list[TurnEvent], bool]:
    """alice's turn whose send's stream is cut after the ping and three words."""
    alice = letta.add_agent("alice")
    letta.set_reply(alice, REPLY)
    letta.token_delay = 0.05
    target = Target("agents", (AgentRef(alice, "alice"),))
    port = int(letta.base_url.rsplit(":", 1)[1])

    async def go() -> tuple[list[TurnEvent], bool]:
        cutter = Cutter(port, after=4, on_cut=on_cut)
        relay = await asyncio.start_server(cutter.serve, "127.0.0.1", 0)
        client = LettaClient(f"http://127.0.0.1:{relay.sockets[0].getsockname()[1]}")
        try:
            runner = BridgeRunner(client, tokens=True)
            turn = TurnInput("hi", OTID, "maria")
            return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())], cutter.cut
        finally:
            await client.aclose()
            relay.close()

    return asyncio.run(go())


def test_a_background_stream_cut_mid_reply_is_picked_up_where_it_stopped() -> None:
    with FakeLetta(version="0.16.8", redis=True) as letta:
        events, cut = _cut_turn(letta)
        assert cut, "the relay never cut the stream"
        assert [e.text for e in events if isinstance(e, AgentReply)] == [REPLY], events
        sends = [r for r in letta.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert len(sends) == 1, "the message was sent again: a second turn"
        resumes = [r.body for r in letta.requests if r.path.endswith("/stream") and r.body]
        assert resumes and resumes[-1].get("otid") and resumes[-1].get("starting_after") == 4, resumes


def _unknown_otid() -> dict[str, Any]:
    return dict(S.body("0.16.8", "redis-conversations-stream-resume-unknown-otid"))


@pytest.mark.parametrize(("status", "body"), [
    (404, None),  # Redis no longer maps the otid to its run (restarted, or expired): the captured 404
    (500, {"detail": "An unknown error occurred"}),  # Letta's own failure on the resume route
])
def test_a_cut_stream_whose_re_attach_is_refused_is_read_from_history_not_left_half_said(
    status: int, body: dict[str, Any] | None
) -> None:
    """The re-attach after a cut was refused: the reply stopped at its first words, followed by the refusal's words
    ("Letta does not know alice … It may have been deleted" for a 404), though the run went on and stored the whole
    reply. Now the cut is what the turn reports, and the reply is read from history once the run has ended."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        refusal = body or _unknown_otid()
        events, cut = _cut_turn(letta, lambda: letta.fail_next("POST", r"/v1/conversations/[^/]+/stream", status,
                                                                   body=refusal))
        assert cut, "the relay never cut the stream"
        assert [e.text for e in events if isinstance(e, AgentReply)] == [REPLY], events
        sends = [r for r in letta.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert len(sends) == 1, "the message was sent again: a second turn"



class Died(Exception):
    """The process ending while the card is being asked (what a kill leaves: the send journaled as sending)."""


class Dying(ApproveAll):
    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        raise Died


def test_a_decisions_answer_cut_mid_reply_after_a_restart_is_read_from_history() -> None:
    """The process died at finn's approval card; the resumed turn re-attached to the run, sent the decision, and the
    stream of finn's answer to it was cut after the tool's return. The turn kept only "Let me do that." and said "the
    answer may be lost. Ask again if nothing follows" (asking again is a second turn), though Letta finished and
    stored the answer: a cut on the live send's path is read from history, this one was not."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, ("shout", '{"message": "hello"}'), said="Let me do that.")
        letta.set_reply(finn, REPLY)
        letta.token_delay = 0.05
        target = Target("agents", (AgentRef(finn, "finn"),))
        port = int(letta.base_url.rsplit(":", 1)[1])

        async def go() -> tuple[list[TurnEvent], bool]:
            cutter = Cutter(port, after=2, nth=2)  # the decision's answer: after the tool's return
            relay = await asyncio.start_server(cutter.serve, "127.0.0.1", 0)
            client = LettaClient(f"http://127.0.0.1:{relay.sockets[0].getsockname()[1]}")
            journal = MemoryJournal()
            try:
                runner = BridgeRunner(client, tokens=True)
                turn = TurnInput("please shout", OTID, "maria", approvals=Dying())
                with pytest.raises(Died):
                    [e async for e in runner.run(target, turn, NoTranscript(), journal)]
                turn = dataclasses.replace(turn, approvals=ApproveAll())
                return [e async for e in runner.run(target, turn, NoTranscript(), journal)], cutter.cut
            finally:
                await client.aclose()
                relay.close()

        events, cut = asyncio.run(go())
        assert cut, "the relay never cut the stream"
        assert [[a["approve"] for a in d["approvals"]] for d in letta.approval_decisions()] == [[True]]
        assert len([i for i in letta.inputs if i.text == "please shout"]) == 1
        assert not [e for e in events if isinstance(e, AgentFailure)], events
        assert [e.text for e in events if isinstance(e, AgentReply)] == [f"Let me do that.\n\n{REPLY}"], events
