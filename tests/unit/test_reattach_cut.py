"""A send whose answer was lost before its headers (a reset) on a server with background runs: the bridge re-attaches
to the run by its otid. When that re-attached stream is cut mid-reply and the re-attach after it is refused, the
reply must be read from history (as a live send's cut is), not left half said with "Ask again"."""

from __future__ import annotations

import asyncio
import contextlib
import re

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript

REPLY = "alice thinks the answer is forty two"
SEND = re.compile(rb"^POST /v1/conversations/[^/ ]+/messages ", re.MULTILINE)
RESUME = re.compile(rb"^POST /v1/conversations/[^/ ]+/stream ", re.MULTILINE)


class Relay:
    """Resets the first conversation send's connection before any answer byte (the request was written), then cuts
    the first re-attach (`/stream`) after `after` SSE frames."""

    def __init__(self, upstream: int, after: int, on_cut, stage: int = 0, probes: int = 0) -> None:
        self.upstream, self.after, self.on_cut = upstream, after, on_cut
        self.stage = stage  # 0: waiting for the send; 1: waiting for the re-attach; 2: done
        self.probes = probes  # resume-route probes (`{}`) to let pass before the re-attach
        self.cuts = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        armed: list[int] = []  # frames to let through before cutting

        async def to_letta() -> None:
            while chunk := await reader.read(65536):
                if self.stage == 0 and SEND.search(chunk):
                    self.stage, armed[:] = 1, [0]
                elif self.stage == 1 and RESUME.search(chunk) and not armed:
                    if self.probes:
                        self.probes -= 1
                    else:
                        self.stage, armed[:] = 2, [self.after]
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            frames = 0
            while chunk := await up_reader.read(65536):
                if armed:
                    for frame in re.split(rb"(?<=\n\n)", chunk):
                        if frames >= armed[0]:
                            self.cuts += 1
                            if armed[0]:
                                self.on_cut()
                            armed.clear()
                            await writer.drain()
                            writer.transport.abort()
                            up_writer.transport.abort()
                            return
                        frames += frame.count(b"data: ")
                        writer.write(frame)
                else:
                    writer.write(chunk)
                await writer.drain()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(to_letta(), to_client())
        writer.close()
        up_writer.close()


def test_a_re_attached_run_whose_stream_is_cut_and_refused_is_read_from_history() -> None:
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        letta.set_reply(alice, REPLY)
        letta.token_delay = 0.05
        target = Target("agents", (AgentRef(alice, "alice"),))
        port = int(letta.base_url.rsplit(":", 1)[1])
        refusal = dict(S.body("0.16.8", "redis-conversations-stream-resume-unknown-otid"))

        async def go() -> tuple[list[TurnEvent], int]:
            relay = Relay(port, after=4, on_cut=lambda: letta.fail_next(
                "POST", r"/v1/conversations/[^/]+/stream", 404, body=refusal))
            server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
            client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
            try:
                runner = BridgeRunner(client, tokens=True)
                turn = TurnInput("hi", OTID, "maria")
                return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())], relay.cuts
            finally:
                await client.aclose()
                server.close()

        events, cuts = asyncio.run(asyncio.wait_for(go(), 30))
        assert cuts == 2, f"the relay cut {cuts} times"
        sends = [r for r in letta.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert len(sends) == 1, "the message was sent again: a second turn"
        assert [e.text for e in events if isinstance(e, AgentReply)] == [REPLY], events
        assert not [e for e in events if isinstance(e, AgentFailure)], events


def test_a_turn_resumed_after_a_kill_whose_re_attached_stream_is_cut_is_read_from_history() -> None:
    """The bridge was killed while alice answered (the send journaled, the run going on at Letta). The restarted
    bridge re-attaches to the run by its otid; that stream is cut mid-reply and the re-attach after it refused."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        letta.set_reply(alice, REPLY)
        letta.token_delay = 0.1
        target = Target("agents", (AgentRef(alice, "alice"),))
        port = int(letta.base_url.rsplit(":", 1)[1])
        refusal = dict(S.body("0.16.8", "redis-conversations-stream-resume-unknown-otid"))
        journal = MemoryJournal()

        async def go() -> tuple[list[TurnEvent], int]:
            first = LettaClient(letta.base_url)
            runner = BridgeRunner(first, tokens=True)
            turn = TurnInput("hi", OTID, "maria")
            task = asyncio.create_task(_drain(runner.run(target, turn, NoTranscript(), journal)))
            while not letta.inputs:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.15)
            task.cancel()  # the kill: the send is journaled as sending, its run goes on at Letta
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await first.aclose()
            relay = Relay(port, after=4, stage=1, probes=1, on_cut=lambda: letta.fail_next(
                "POST", r"/v1/conversations/[^/]+/stream", 404, body=refusal))
            server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
            client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
            try:
                runner = BridgeRunner(client, tokens=True)
                return [e async for e in runner.run(target, turn, NoTranscript(), journal)], relay.cuts
            finally:
                await client.aclose()
                server.close()

        events, cuts = asyncio.run(asyncio.wait_for(go(), 30))
        assert cuts == 1, f"the relay cut {cuts} times"
        assert len([i for i in letta.inputs if i.agent_id == alice]) == 1, "alice was asked twice"
        assert [e.text for e in events if isinstance(e, AgentReply)] == [REPLY], events
        assert not [e for e in events if isinstance(e, AgentFailure)], events


async def _drain(source) -> list[TurnEvent]:
    return [e async for e in source]
