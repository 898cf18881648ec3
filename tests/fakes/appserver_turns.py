"""The fake App Server's turns (tests/fakes/appserver.py): an `input` taken, queued or refused, and run as the
captures show a real server running it: its frames, its answer stored, an abort, a model failing.

A mixin of FakeAppServer: it reads the server's conversations, agents and sockets, and sends through it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from tests.fakes import appserver_queue, appserver_tools
from tests.fakes.appserver_frames import (
    CAPTURED,
    INTERRUPTED,
    LLM_500,
    LLM_500_MS,
    REMINDER,
    Conv,
    Json,
    Turn,
    like,
    now,
)
from tests.fakes.appserver_images import FAILED, FAILED_DELTA, MODES, read_content


class AppServerTurns:
    async def _on_input(self, ws: web.WebSocketResponse, frame: Json) -> None:
        runtime, payload = frame.get("runtime"), frame.get("payload") or {}
        if not isinstance(runtime, dict):
            return  # capture ws-malformed-frames.json ("input" without runtime or payload: nothing)
        conv = self.convs.get(runtime.get("conversation_id", ""))
        if payload.get("kind") == "approval_response":
            await self._approval_response(ws, frame, runtime, payload)
            return
        mode = payload.get("image_failure_mode")
        if payload.get("kind") != "create_message" or not isinstance(payload.get("messages"), list) or (
            mode not in MODES
        ):
            said = "Unsupported input payload kind: " + str(payload.get("kind"))
            if payload.get("kind") == "create_message":
                said = "Protocol violation: input.kind=create_message requires payload.messages[]"
            if mode not in MODES:  # from the server's source (letta.js), as its other protocol violations
                said = "Protocol violation: input.payload.image_failure_mode must be strict or drop"
            delta = like(CAPTURED["bad_input"]["delta"], message=said, id=f"lifecycle-{uuid.uuid4()}")
            await self._send(ws, like(CAPTURED["bad_input"], delta=delta, runtime=runtime))
            return
        if self.refuse:  # capture ws-approval-pending-queue-abort-resume: an input refused in words
            refused = like(CAPTURED["accepted"], request_id=frame.get("request_id"), runtime=runtime)
            refused.pop("disposition", None)
            refused.update(accepted=False, error=self.refuse.pop(0))
            await self._send(ws, refused)
            return
        message = (payload["messages"] or [{}])[0]
        text, images, unreadable = read_content(message.get("content", ""), mode)
        turn = Turn(
            runtime.get("conversation_id", ""),
            # the conversation's own agent answers, whatever agent the runtime names (capture
            # ws-input-agent-conversation-mismatch.json)
            conv.agent_id if conv is not None else runtime.get("agent_id", ""),
            message.get("client_message_id", ""),
            text,
            ws,
            f"batch-direct-{uuid.uuid4()}",
            no_tools=payload.get("client_tool_allowlist") == [],
            images=images,
        )
        queued = conv is not None and (conv.running is not None or conv.draining or conv.interrupted)
        accepted = like(CAPTURED["accepted"], request_id=frame.get("request_id"), runtime=runtime)
        accepted["disposition"] = "queued" if queued else "started"  # capture ws-busy-same-conversation-queued
        await self._send(ws, accepted)
        if conv is None or conv.stuck or turn.agent_id not in self.agents:
            await self._refuse(ws, runtime, turn, conv)
            return
        if unreadable:  # capture ws-image-bad-data.json: the turn fails before any model call, nothing stored
            delta = like(FAILED_DELTA["delta"], id=f"lifecycle-{uuid.uuid4()}", client_message_ids=[turn.cmid])
            await self._send(ws, like(FAILED_DELTA, delta=delta, runtime=runtime))
            await self._send(ws, like(FAILED, turn_id=f"turn-{uuid.uuid4()}", runtime=runtime))
            return
        conv.attached.add(ws)  # the sender receives its turn (capture ws-two-sockets-queue-then-sender-…)
        for parked in conv.queue:  # observed 0.34.12: a new input lets the inputs an abort parked run
            parked.paused = False
        conv.queue.append(turn)
        if queued:
            turn.item_id, turn.enqueued_at = f"q-{next(conv.items)}", now()
            await appserver_queue.show(self, conv, runtime)
        if not conv.draining:
            conv.draining = True
            task = conv.drain = asyncio.ensure_future(self._drain(conv, runtime))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _approval_response(self, ws: web.WebSocketResponse, frame: Json, runtime: Json, payload: Json) -> None:
        """capture ws-approval-allow.json: accepted, no disposition; capture ws-approval-pending-queue-abort-resume:
        a request_id not pending is refused in words."""
        waiting = self.approvals.get(str(payload.get("request_id")))
        accepted = like(CAPTURED["accepted"], request_id=frame.get("request_id"), runtime=runtime)
        accepted.pop("disposition", None)
        if waiting is None or waiting.done():
            accepted.update(accepted=False, error=appserver_tools.NOT_PENDING)
        else:
            waiting.set_result(payload.get("decision") or {})
        await self._send(ws, accepted)

    async def _refuse(self, ws: web.WebSocketResponse, runtime: Json, turn: Turn, conv: Conv | None) -> None:
        """capture ws-input-unknown-conversation.json; an unknown or deleted agent (a conversation of one
        included): capture ws-input-unknown-agent.json, observed 0.34.12 for a conversation whose agent was
        deleted; observed 0.34.12 for a stuck conversation. Same shape, their own words, no model call, nothing
        stored."""
        said = f"Conversation {turn.conversation} not found"
        if turn.agent_id not in self.agents:
            said = f"Agent {turn.agent_id} not found"
        if conv is not None and conv.stuck:
            said = conv.stuck
            turn.turn_id = f"turn-{uuid.uuid4()}"  # observed 0.34.12
        await self._send(ws, like(CAPTURED["failed"], turn_id=turn.turn_id, error=said, runtime=runtime))
        delta = like(CAPTURED["loop_error"]["delta"], id=f"lifecycle-{uuid.uuid4()}", date=now(), message=said)
        await self._send(ws, like(CAPTURED["loop_error"], delta=delta, runtime=runtime))

    async def _drain(self, conv: Conv, runtime: Json) -> None:
        try:
            await self._run_queue(conv, runtime)
        finally:
            conv.draining = False

    async def _run_queue(self, conv: Conv, runtime: Json) -> None:
        batch = 0
        while conv.queue and not conv.queue[0].paused:
            turn = conv.queue.pop(0)
            conv.running = turn
            if batch or conv.interrupted:  # a turn taken from the queue (capture ws-busy-same-conversation-queued)
                turn.turn_id = f"batch-{batch + 1}"
                echo = like(CAPTURED["echo"]["delta"], id=f"user-msg-{uuid.uuid4()}", date=now())
                echo.update(content=turn.text, otid=turn.cmid)
                await self._emit(conv, like(CAPTURED["echo"], delta=echo), runtime)
            batch += 1
            try:
                await self._run(conv, turn, runtime)
            finally:
                conv.running = None

    def _store(self, conv: Conv, role: str, text: str, parts: list[Json] | None = None, **extra: Any) -> Json:
        # images after the text; an image alone has no text part (capture ws-image-history.json)
        content = [*([{"type": "text", "text": text}] if text or not parts else []), *(parts or [])]
        if role == "user" and not any(m["message_type"] == "user_message" for m in conv.messages):
            content = [REMINDER, *content]  # README §11: the first one has reminders, your text is last
        message = {"id": f"ui-msg-{next(self._ids)}", "date": now(), "agent_id": conv.agent_id}
        message.update(conversation_id=conv.id, message_type=f"{role}_message", role=role, content=content, **extra)
        conv.messages.append(message)
        conv.updated_at = message["date"]
        return message

    async def _run(self, conv: Conv, turn: Turn, runtime: Json) -> None:
        """One model call and what the server streams of it (capture ws-runtime-start-and-first-turn.json)."""
        agent = self.agents.get(turn.agent_id)
        if agent is None:  # deleted while the input waited in the queue: ended as an input to it (_refuse)
            if turn.sender is not None:
                await self._refuse(turn.sender, runtime, turn, conv)
            return
        self.inputs.append(turn)
        if conv.interrupted:  # capture ws-abort-during-llm-call.json: inserted before the next user message
            self._store(conv, "user", INTERRUPTED, otid=str(uuid.uuid4()))
            conv.interrupted = False
        self._store(conv, "user", turn.text, turn.images, otid=turn.cmid)
        turn.run_id = f"local-run-{next(self._runs)}"
        mode = self.modes.get(turn.agent_id, "ok")
        await self._emit(conv, like(CAPTURED["device"]), runtime)
        if mode == "500":
            await self._replay_500(conv, turn, runtime)
            return
        if mode.startswith("slow:"):
            await asyncio.sleep(float(mode[5:]))  # an abort does not stop a model call in flight (README §8)
        elif mode == "hang":
            await turn.aborted.wait()
            await asyncio.sleep(self.hang_release)  # the hung call returns some time after (ws-llm-hang-then-abort)
        if turn.aborted.is_set() or turn.cut:
            await self._cancelled(conv, turn, runtime, f"{agent['name']} ")
            return
        turn.streamed = True
        await self._emit(conv, self._loop_status(conv, turn), runtime)
        tools = self.tools.get(turn.agent_id)
        outcome = "ran"
        if tools and not turn.no_tools:
            outcome = await appserver_tools.play(self, conv, turn, runtime, tools, conv.mode)
        if outcome == "cancelled":
            await self._cancelled(conv, turn, runtime, "")
            return
        if outcome == "asked":  # captures ws-approval-*: the model's next step is a new run of the same input
            turn.earlier_runs.append(turn.run_id)
            turn.run_id = f"local-run-{next(self._runs)}"
            await self._emit(conv, self._loop_status(conv, turn), runtime)
        message_id = f"ui-msg-{next(self._ids)}"
        words = self._answer(agent["name"], mode, turn.text).split(" ")
        gap = float(mode[5:]) if mode.startswith("drip:") else 0.005
        for index, word in enumerate(words):
            piece = word if index == len(words) - 1 else word + " "
            delta = like(CAPTURED["assistant"]["delta"], id=message_id, date=now(), agent_id=turn.agent_id)
            delta.update(conversation_id=conv.id, content=[{"type": "text", "text": piece}], run_id=turn.run_id)
            delta["seq_id"] = index + 1
            await self._emit(conv, like(CAPTURED["assistant"], delta=delta), runtime)
            await asyncio.sleep(gap)
            if turn.cut:  # observed 0.34.12 (a socket closed mid-reply): only the chunk in flight is kept
                await self._cancelled(conv, turn, runtime, piece)
                return
            if turn.aborted.is_set():  # observed 0.34.12: the stream ends there, nothing stored
                await self._cancelled(conv, turn, runtime, "")
                return
        self._store(conv, "assistant", " ".join(words))
        conv.messages[-1]["id"] = message_id  # the deltas' id is the message's id in history (README §5)
        agent["last_run_completion"] = now()
        for name in ("usage", "stop"):
            delta = like(CAPTURED[name]["delta"], run_id=turn.run_id)
            await self._emit(conv, like(CAPTURED[name], delta=delta), runtime)
        await self._emit(conv, like(CAPTURED["finished"], turn_id=turn.turn_id, run_id=turn.run_id), runtime)

    def _loop_status(self, conv: Conv, turn: Turn) -> Json:
        runs = {r: [t.cmid] for t in self.inputs if t.conversation == conv.id for r in [*t.earlier_runs, t.run_id] if r}
        loop = like(CAPTURED["loop"], loop_status={**CAPTURED["loop"]["loop_status"], "active_run_ids": [turn.run_id]})
        loop["loop_status"]["client_message_ids_by_run_id"] = runs
        return loop

    @staticmethod
    def _answer(name: str, mode: str, text: str) -> str:
        if mode.startswith("choose:"):
            chosen = mode.split(":", 1)[1]
            return "DONE!" if f"{chosen} says hi" in text else chosen
        return f"{name} says hi"

    async def _cancelled(self, conv: Conv, turn: Turn, runtime: Json, first_chunk: str) -> None:
        if turn.cut:  # capture ws-disconnect-mid-turn-no-reconnect.json: the first chunk stays in history
            if first_chunk:
                self._store(conv, "assistant", first_chunk, _cut=True)
            conv.stuck = f"Conversation {conv.id} already has an active run ({turn.run_id})"  # observed 0.34.12
            for queued in conv.queue:  # observed 0.34.12: a message queued behind it is cancelled with it
                queued.cut = True
        else:
            conv.interrupted = True
        cancelled = like(CAPTURED["cancelled"], turn_id=turn.turn_id)
        if turn.streamed:  # observed 0.34.12: the run's id (before `runtime`), once it has one
            keys = list(cancelled)
            keys.insert(keys.index("runtime"), "run_id")
            cancelled = {k: turn.run_id if k == "run_id" else cancelled[k] for k in keys}
        await self._emit(conv, cancelled, runtime)

    async def _replay_500(self, conv: Conv, turn: Turn, runtime: Json) -> None:
        """capture ws-llm-error-500.json, frame for frame after input_accepted, its timing scaled."""
        start = LLM_500_MS[1]
        for frame, at in zip(LLM_500[1:], LLM_500_MS[1:], strict=True):
            await asyncio.sleep(max(0.0, (at - start) * self.scale / 1000))
            start = at
            if frame["type"] == "update_device_status":
                continue
            if frame["type"] == "stream_delta":
                delta = dict(frame["delta"])
                for key in ("agent_id", "conversation_id"):
                    if key in delta:
                        delta[key] = runtime[key]
                frame = like(frame, delta=delta)
            if frame["type"] == "turn_finished":
                frame = like(frame, turn_id=turn.turn_id)
            await self._emit(conv, frame, runtime)
