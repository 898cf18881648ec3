"""Taking an input back on a real App Server (PyPI letta==0.34.12): the protocol facts the fake's queue and abort
copy (tests/fakes/appserver_queue.py, FakeAppServer.freeze) and bridge/letta/appserver/withdraw.py relies on,
then the bridge's own client doing it. None of it is in the 0.32.18 captures except the parked queue.

- `abort_message` with `run_id` stops only that run: another id, or any id before the model has begun to answer
  (the run has no id yet), is answered `aborted: false` and nothing changes. Named while it streams, it ends the
  turn `cancelled` (`turn_finished` with the run's id), no whole reply stored.
- Without `run_id` it stops whatever the conversation runs, and parks the input queued behind it (`paused`) until
  the next input, which then runs with it.
- A turn aborted while the model call is in flight (or while it streams) ends `cancelled` when the call returns,
  with no whole reply stored; unlike the 0.32.18 captures, 0.34.12 often keeps the reply's first chunk in history
  (`"kim "`), which nothing the client sends prevents.
- `remove_queue_item` takes a queued input out: `remove_queue_item_response {success, item_id}`, `update_queue`
  with `removed: [{client_message_id, disposition: "cancelled"}]`; it never runs. Again: `success: false`.
- A stalled server (SIGSTOP, then SIGCONT) accepts and runs what it was sent; an abort sent right behind the input
  is answered `aborted: false` (its turn had not begun), and the input runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from bridge.letta.appserver import AppServerClient, TurnEvent, wire
from bridge.letta.errors import Kind, LettaError
from tests.real import test_appserver_real
from tests.real.fake_model import FakeModel
from tests.real.test_appserver_real import HOME, make_agent, run

pytestmark = pytest.mark.real
server = test_appserver_real.server  # a real App Server for this module, as that module starts it

Frames = list[Any]


@contextlib.asynccontextmanager
async def watching(client: AppServerClient, agent: str, conversation: str) -> AsyncIterator[Frames]:
    """Every frame of the conversation this socket receives, in order."""
    frames: Frames = []
    runtime = wire.Runtime(agent_id=agent, conversation_id=conversation)
    async with client.socket.subscribe(runtime) as subscription:
        subscription.watch = frames.append
        yield frames


async def until(frames: Frames, found: Callable[[Any], bool], within: float = 30.0) -> Any:
    for _ in range(int(within / 0.05)):
        hit = next((f for f in frames if found(f)), None)
        if hit is not None:
            return hit
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen within {within} s: {[getattr(f, 'type', f) for f in frames]}")


def finished(frame: Any) -> bool:
    return isinstance(frame, wire.TurnFinished)


async def ask(client: AppServerClient, frame: dict[str, Any]) -> Any:
    frame["request_id"] = client.socket.new_id(frame["type"])
    return await client.socket.request(frame, 30.0)


def message(runtime: dict[str, str], otid: str) -> dict[str, Any]:
    payload = {"kind": "create_message", "messages": [{"role": "user", "content": f"hello {otid}",
                                                       "client_message_id": otid}], "client_tool_allowlist": []}
    return {"type": "input", "runtime": runtime, "payload": payload}


async def stored(client: AppServerClient, conversation: str) -> tuple[list[str | None], list[str]]:
    """The otids of this test's messages (not the server's own reminders) and the replies, oldest first, in the
    conversation's history."""
    messages = list(reversed((await client.history(conversation))[0]))
    otids = [m.otid for m in messages if isinstance(m, wire.UserDelta) and (m.otid or "").startswith("otid-")]
    return otids, [m.text for m in messages if isinstance(m, wire.AssistantDelta)]


def test_an_abort_stops_only_the_run_it_names_and_only_once_it_has_an_id(server: tuple[str, FakeModel]) -> None:
    url, model = server

    async def body(client: AppServerClient) -> None:
        ivy = await make_agent(client, "ivy")
        conversation = (await client.create_conversation(ivy, "T1:C1:1700000001.000100")).id
        runtime = {"agent_id": ivy, "conversation_id": conversation}
        async with watching(client, ivy, conversation) as frames:
            model.mode = "ok"
            await ask(client, message(runtime, "otid-first"))
            last = (await until(frames, finished)).run_id
            frames.clear()
            model.mode = "slow:3"
            await ask(client, message(runtime, "otid-slow"))
            await asyncio.sleep(1)
            n = int(last.rsplit("-", 1)[1])
            candidates = {f"local-run-{n + k}" for k in range(1, 4)}
            for run_id in sorted(candidates):  # its own id among them: it has none yet
                answer = await ask(client, {"type": "abort_message", "runtime": runtime, "run_id": run_id})
                assert isinstance(answer, wire.AbortMessageResponse) and answer.aborted is False, answer
            ended = await until(frames, finished)
            assert ended.stop_reason == "end_turn" and ended.run_id in candidates, ended

            frames.clear()
            model.mode = "drip:4"
            await ask(client, message(runtime, "otid-drip"))
            status = await until(frames, lambda f: isinstance(f, wire.UpdateLoopStatus) and any(
                "otid-drip" in f.loop_status.client_message_ids_by_run_id.get(r, [])
                for r in f.loop_status.active_run_ids))
            run_id = status.loop_status.active_run_ids[0]
            wrong = await ask(client, {"type": "abort_message", "runtime": runtime, "run_id": "local-run-999999"})
            assert wrong.aborted is False
            right = await ask(client, {"type": "abort_message", "runtime": runtime, "run_id": run_id})
            assert right.aborted is True
            ended = await until(frames, finished)
            assert ended.stop_reason == "cancelled" and ended.run_id == run_id, ended
        otids, replies = await stored(client, conversation)
        # No whole reply to the aborted one; once a fragment of what the model streamed after the abort was kept.
        assert otids == ["otid-first", "otid-slow", "otid-drip"] and replies.count("ivy says hi") == 2, replies

    run(url, body)


def test_a_queued_input_is_removed_by_its_item_and_a_runless_abort_parks_it(server: tuple[str, FakeModel]) -> None:
    url, model = server

    async def body(client: AppServerClient) -> None:
        jo = await make_agent(client, "jo")
        conversation = (await client.create_conversation(jo, "T1:C1:1700000001.000200")).id
        runtime = {"agent_id": jo, "conversation_id": conversation}
        async with watching(client, jo, conversation) as frames:
            model.mode = "slow:2"
            await ask(client, message(runtime, "otid-ahead"))
            queued = await ask(client, message(runtime, "otid-queued"))
            assert queued.disposition == "queued"
            update = await until(frames, lambda f: isinstance(f, wire.UpdateQueue) and f.queue)
            [item] = [q.id for q in update.queue if q.client_message_id == "otid-queued"]
            removed = await ask(client, {"type": "remove_queue_item", "runtime": runtime, "item_id": item})
            assert isinstance(removed, wire.RemoveQueueItemResponse) and removed.success and removed.item_id == item
            assert removed.runtime is None
            await until(frames, lambda f: isinstance(f, wire.UpdateQueue) and any(
                r.client_message_id == "otid-queued" and r.disposition == "cancelled" for r in f.removed))
            again = await ask(client, {"type": "remove_queue_item", "runtime": runtime, "item_id": item})
            assert again.success is False
            assert (await until(frames, finished)).stop_reason == "end_turn"
            await asyncio.sleep(2)

            frames.clear()
            await ask(client, message(runtime, "otid-stopped-ahead"))
            await ask(client, message(runtime, "otid-parked"))
            aborted = await ask(client, {"type": "abort_message", "runtime": runtime})
            assert aborted.aborted is True  # meant for the queued one, it stopped the turn ahead
            await until(frames, lambda f: isinstance(f, wire.UpdateQueue) and any(
                q.client_message_id == "otid-parked" and q.paused for q in f.queue))
            assert (await until(frames, finished)).stop_reason == "cancelled"
            await asyncio.sleep(3)
            assert "otid-parked" not in (await stored(client, conversation))[0]  # parked: it does not run
            model.mode = "ok"
            frames.clear()
            await ask(client, message(runtime, "otid-next"))
            await until(frames, lambda f: isinstance(f, wire.TurnFinished) and f.stop_reason == "end_turn")
        otids, _ = await stored(client, conversation)
        assert "otid-queued" not in otids and {"otid-parked", "otid-next"} <= set(otids)

    run(url, body)


def _stall(url: str) -> Callable[[int], None]:
    pid = int((HOME / f"server-{urlsplit(url).port}" / "server.pid").read_text())
    return lambda sig: os.kill(pid, sig)


def test_a_stalled_server_runs_what_it_was_sent_even_behind_an_abort(server: tuple[str, FakeModel]) -> None:
    url, model = server
    signal_server = _stall(url)

    async def body(client: AppServerClient) -> None:
        kim = await make_agent(client, "kim")
        conversation = (await client.create_conversation(kim, "T1:C1:1700000001.000300")).id
        runtime = {"agent_id": kim, "conversation_id": conversation}
        model.mode = "slow:2"
        async with watching(client, kim, conversation) as frames:
            signal_server(signal.SIGSTOP)
            try:  # an abort right behind the input, both held by the stalled server
                await client.socket.send({**message(runtime, "otid-held"), "request_id": "input-held"})
                await client.socket.send({"type": "abort_message", "request_id": "abort-held", "runtime": runtime})
                await asyncio.sleep(2)
            finally:
                signal_server(signal.SIGCONT)
            accepted = await until(frames, lambda f: isinstance(f, wire.InputAccepted))
            assert accepted.accepted and accepted.disposition == "started"
            refused = await until(frames, lambda f: isinstance(f, wire.AbortMessageResponse))
            assert refused.aborted is False  # it came before the input's turn had begun
            ended = await until(frames, finished)
            assert ended.stop_reason == "end_turn"  # so the input ran to its end
        otids, replies = await stored(client, conversation)
        assert otids == ["otid-held"] and replies == ["kim says hi"]

    run(url, body)


def test_the_bridge_takes_back_an_input_a_stalled_server_accepts_late(server: tuple[str, FakeModel]) -> None:
    url, model = server
    signal_server = _stall(url)

    async def body(client: AppServerClient) -> None:
        max_ = await make_agent(client, "max")
        conversation = (await client.create_conversation(max_, "T1:C1:1700000001.000350")).id
        model.mode = "slow:2"
        async with watching(client, max_, conversation) as frames:
            signal_server(signal.SIGSTOP)
            resume = asyncio.get_running_loop().call_later(2.5, signal_server, signal.SIGCONT)  # within as long again
            events: list[TurnEvent] = []
            try:
                with pytest.raises(LettaError) as error:  # the bridge stops waiting for its acceptance after 1.5 s
                    async for event in client.send(max_, conversation, "hello", "otid-given-up", deadline=60):
                        events.append(event)
            finally:
                resume.cancel()
                signal_server(signal.SIGCONT)
            assert error.value.kind == Kind.TIMEOUT and not events
            ended = await until(frames, finished)
            assert ended.stop_reason == "cancelled", ended
        otids, replies = await stored(client, conversation)
        # Stopped before the server stored it, nothing is kept; after, the message (and maybe the reply's first
        # chunk), but never the whole reply.
        assert otids in ([], ["otid-given-up"]) and "max says hi" not in replies, (otids, replies)

    run(url, body, request_timeout=1.5)


def test_a_stop_takes_a_queued_send_out_and_the_turn_ahead_answers(server: tuple[str, FakeModel]) -> None:
    url, model = server

    async def body(client: AppServerClient) -> None:
        lu = await make_agent(client, "lu")
        conversation = (await client.create_conversation(lu, "T1:C1:1700000001.000400")).id
        runtime = {"agent_id": lu, "conversation_id": conversation}
        model.mode = "slow:2"
        async with watching(client, lu, conversation) as frames:
            await ask(client, message(runtime, "otid-ahead"))
            sending = asyncio.ensure_future(
                _events(client.send(lu, conversation, "hello", "otid-stopped", deadline=60)))
            await until(frames, lambda f: isinstance(f, wire.UpdateQueue) and any(
                q.client_message_id == "otid-stopped" for q in f.queue))
            assert await client.abort(lu, conversation)  # as a person's Stop does (stopping.py)
            sending.cancel()
            [stopped] = await asyncio.gather(sending, return_exceptions=True)
            assert isinstance(stopped, asyncio.CancelledError), stopped  # at once, not at its deadline
            ended = await until(frames, finished)
            assert ended.stop_reason == "end_turn", ended
        otids, replies = await stored(client, conversation)
        assert otids == ["otid-ahead"] and replies == ["lu says hi"]

    run(url, body)


async def _events(events: Any) -> list[TurnEvent]:
    return [event async for event in events]

