"""A fake Letta App Server on 127.0.0.1: the WebSocket protocol and `GET /app-server-info`, as captured.

Every frame it sends is a frame of a capture in reference/letta/app-server/ (`_T`, below) with only its ids,
texts, counters and times replaced, so field names, their order and nulls are the real server's. Each behaviour
names its source: "capture <file>" (0.32.18, recorded) or "observed 0.34.12" (seen on a real App Server run
here, see tests/real/test_appserver_real.py and the README's §9).

Like tests/fakes/letta.py it runs in its own thread and loop, so that sync and async tests can drive it.
Agents answer "<name> says hi", one word per chunk. Per agent `mode`: "ok", "slow:S" (the model call takes S
seconds), "hang" (it never returns until aborted, then after `hang_release` s), "500" (the model fails: the
captured retry ladder of ws-llm-error-500.json replayed, its 35 s scaled by `scale`), "choose:NAME" (a dynamic
group's manager, as tests/real/llm.py answers: "NAME" until NAME's reply is in what it is shown, then "DONE!"),
"drip:S" (the reply's words come S seconds apart).
The queue and the abort are in appserver_queue.py; `freeze` stalls the server as SIGSTOP does a real one.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import appserver_queue, appserver_tools
from tests.fakes.appserver_images import FAILED, FAILED_DELTA, MODES, read_content
from tests.reference import APP_SERVER, load

Json = dict[str, Any]


def _frames(name: str) -> list[Json]:
    return [f["json"] for f in load(APP_SERVER / name)["frames"] if f["dir"] == "received"]


def _first(name: str, type_: str, message_type: str | None = None, **match: Any) -> Json:
    for frame in _frames(name):
        if frame.get("type") != type_:
            continue
        if message_type is not None and frame.get("delta", {}).get("message_type") != message_type:
            continue
        if all(frame.get(k) == v or frame.get("loop_status", {}).get(k) == v for k, v in match.items()):
            return frame
    raise LookupError(f"{name}: no {type_} {message_type or ''} {match}")


_TURN = "ws-runtime-start-and-first-turn.json"
_T: dict[str, Json] = {
    "info": load(APP_SERVER / "http-app-server-info.json")["response"]["body"],
    "agent": _first("ws-agent-create-alice.json", "agent_create_response")["agent"],
    "conversation": _first("ws-conversation-create-and-turn.json", "conversation_create_response")["conversation"],
    "accepted": _first(_TURN, "input_accepted"),
    "device": _first(_TURN, "update_device_status"),
    "loop": _first(_TURN, "update_loop_status", active_run_ids=["local-run-2"]),
    "assistant": _first(_TURN, "stream_delta", "assistant_message"),
    "usage": _first(_TURN, "stream_delta", "usage_statistics"),
    "stop": _first(_TURN, "stream_delta", "stop_reason"),
    "finished": _first(_TURN, "turn_finished"),
    "echo": _first("ws-busy-same-conversation-queued.json", "stream_delta", "user_message"),
    "failed": _first("ws-input-unknown-conversation.json", "turn_finished"),
    "loop_error": _first("ws-input-unknown-conversation.json", "stream_delta", "loop_error"),
    "bad_input": _first("ws-malformed-frames.json", "stream_delta", "loop_error"),
    "interrupted": _first("ws-abort-during-llm-call.json", "stream_delta", "status"),
    "aborted": _first("ws-abort-during-llm-call.json", "abort_message_response"),
    "cancelled": _first("ws-abort-during-llm-call.json", "turn_finished"),
    "history": _first("ws-history-desc-limit3.json", "conversation_messages_list_response"),
    "no_history": _first("ws-history-unknown-conversation.json", "conversation_messages_list_response"),
}
_LLM_500 = _frames("ws-llm-error-500.json")  # the whole captured retry ladder, replayed
_LLM_500_MS = [f["t_ms"] for f in load(APP_SERVER / "ws-llm-error-500.json")["frames"] if f["dir"] == "received"]
_REMINDER = {
    "type": "text",
    "text": "<system-reminder>\nThis is an automated message providing context.\n</system-reminder>",
}
_INTERRUPTED = "<system-reminder>The user interrupted the active stream.</system-reminder>\n"


def _like(template: Json, **values: Any) -> Json:
    """A copy of a captured frame with some values replaced (keys keep their captured order)."""
    out = copy.deepcopy(template)
    out.update(values)
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


@dataclass
class Turn:
    conversation: str
    agent_id: str
    cmid: str
    text: str
    sender: web.WebSocketResponse | None
    turn_id: str
    run_id: str = ""
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    cut: bool = False  # the socket that started it closed (capture ws-disconnect-mid-turn-*)
    no_tools: bool = False  # the input allowed none (client_tool_allowlist: [])
    images: list[Json] = field(default_factory=list)  # the image parts kept (appserver_images.py)
    earlier_runs: list[str] = field(default_factory=list)  # runs before a tool decision (appserver_tools.py)
    streamed: bool = False  # the model began to answer: the run has an id on the server (appserver_queue.py)
    item_id: str = ""  # its queue item id while it waits in the queue
    enqueued_at: str = ""
    paused: bool = False  # parked by an abort (appserver_queue.py)


@dataclass
class Conv:
    id: str
    agent_id: str
    summary: str | None = None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    messages: list[Json] = field(default_factory=list)
    queue: list[Turn] = field(default_factory=list)
    running: Turn | None = None
    stuck: str | None = None  # observed 0.34.12: "already has an active run (local-run-M)" until a restart
    interrupted: bool = False
    mode: str = "unrestricted"  # runtime_start's permission mode (README §7)
    attached: set[web.WebSocketResponse] = field(default_factory=set)
    draining: bool = False  # a task runs its queue
    items: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class FakeAppServer:
    def __init__(self, token: str | None = None, scale: float = 0.01, hang_release: float = 0.3) -> None:
        self.token = token
        self.scale = scale
        self.hang_release = hang_release
        self.port = 0
        self.agents: dict[str, Json] = {}
        self.modes: dict[str, str] = {}
        self.convs: dict[str, Conv] = {}
        self.received: list[Any] = []  # every frame a client sent, parsed (or the raw text)
        self.inputs: list[Turn] = []  # every message input that reached a model
        self.drop: list[str] = []  # frame types to drop (once each) without an answer
        self.tools: dict[str, list[appserver_tools.Tool]] = {}  # agent id -> the tools it calls before replying
        self.approvals: dict[str, asyncio.Future[Json]] = {}  # control_request id -> the client's decision
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._seq: dict[web.WebSocketResponse, itertools.count[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._held: list[tuple[web.WebSocketResponse, str]] | None = None  # frames received while frozen

    # ------------------------------------------------------------ control (from the test's thread)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fake-app-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake App Server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the fake's loop (its state is only touched there)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def add_agent(self, name: str, mode: str = "ok") -> str:
        agent_id = f"agent-local-{uuid.uuid4()}"  # capture ws-agent-create-*: ids are agent-local-<uuid4>
        agent = _like(_T["agent"], id=agent_id, name=name, description=f"agent {name}", last_run_completion=_now())
        agent["system"] = f"You are {name}. My name is {name}."
        self.agents[agent_id] = agent
        self.modes[agent_id] = mode
        return agent_id

    def set_tools(self, agent_id: str, tools: list[appserver_tools.Tool]) -> None:
        """The agent calls these tools ((name, read-only)) before each reply, where the input allows tools."""
        self.tools[agent_id] = list(tools)

    def freeze(self) -> None:
        """Stall the server: frames are received but not read until `thaw` (observed 0.34.12 stopped with SIGSTOP
        and resumed: it answers and runs what it was sent, in order, tests/real/test_appserver_withdraw_real.py)."""
        self.call(lambda: setattr(self, "_held", []))

    def thaw(self) -> None:
        async def resume() -> None:
            while self._held:
                ws, text = self._held.pop(0)
                await self._frame(ws, text)
            self._held = None

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(resume(), self._loop).result(10)

    def drop_connections(self) -> None:
        """Close every socket from the server's side (what the client sees when the server goes away)."""
        self.call(lambda: [asyncio.ensure_future(ws.close()) for ws in list(self._seq)])

    def restart(self) -> None:
        """observed 0.34.12: a restart frees stuck conversations, and the cut-off reply is gone from history.
        capture restart-ws-turn-existing-conversation.json: run ids start again at local-run-1."""
        self.drop_connections()
        for conv in self.convs.values():
            conv.stuck = None
            conv.messages = [m for m in conv.messages if not m.get("_cut")]
        self._runs = itertools.count(1)

    def history_of(self, conversation: str) -> list[Json]:
        return [{k: v for k, v in m.items() if not k.startswith("_")} for m in self.convs[conversation].messages]

    # ------------------------------------------------------------ the server

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app = web.Application()
        app.router.add_get("/app-server-info", self._info)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/", self._ws)  # capture ws-upgrade-root-path-ok-raw.json
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    def _auth(self, request: web.Request) -> str | None:
        """capture auth-*.json: the reason a request is refused, or None."""
        if request.headers.get("Origin") and self.token is None:
            return "Forbidden"  # capture http-origin-header-rejected.json, ws-upgrade-origin-without-auth.json
        if self.token is None:
            return None
        header = request.headers.get("Authorization")
        if header is None:
            return "missing websocket bearer token"
        if not header.startswith("Bearer "):
            return "invalid authorization header"
        return None if header[7:] == self.token else "invalid websocket bearer token"

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")  # capture http-healthz.json

    async def _info(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused == "Forbidden":
            return web.Response(status=403)
        if refused:
            return web.json_response({"error": refused}, status=401)  # capture auth-http-app-server-info-*.json
        return web.json_response(_T["info"])  # capture http-app-server-info.json

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        refused = self._auth(request)
        if refused:  # a bare status line whose reason is the message (capture auth-ws-upgrade-*.json)
            return web.Response(status=403 if refused == "Forbidden" else 401, reason=refused)
        ws = web.WebSocketResponse(heartbeat=30.0)  # README §2: a ping every 30 s
        await ws.prepare(request)
        self._seq[ws] = itertools.count(1)  # event_seq counts per socket (capture ws-two-sockets-who-receives)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT and self._held is not None:
                    self._held.append((ws, message.data))
                elif message.type == WSMsgType.TEXT:
                    await self._frame(ws, message.data)
                # binary frames: dropped silently (capture ws-malformed-frames.json)
        finally:
            self._seq.pop(ws, None)
            self._closed(ws)
        return ws

    async def _send(self, ws: web.WebSocketResponse, frame: Json) -> None:
        if ws.closed:
            return
        if "event_seq" in frame:
            seq = next(self._seq.get(ws, itertools.count(1)))
            frame = _like(frame, event_seq=seq, emitted_at=_now())
            frame["idempotency_key"] = f"{frame['type']}:{seq}:{uuid.uuid4()}"
        await ws.send_str(json.dumps(frame, separators=(",", ":")))

    async def _emit(self, conv: Conv, frame: Json, runtime: Json) -> None:
        """A runtime event goes to every socket attached to the conversation (capture ws-two-sockets-who-receives)."""
        frame = _like(frame, runtime=runtime) if "runtime" in frame else frame
        for ws in list(conv.attached):
            await self._send(ws, frame)

    async def _frame(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        self.received.append(frame if frame is not None else text)
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return  # capture ws-malformed-frames.json: no answer, the socket stays usable
        kind, request_id = frame["type"], frame.get("request_id")
        if kind in self.drop:
            self.drop.remove(kind)  # as the server does with a frame it cannot read: not a word
            return
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None or (request_id is None and kind != "input"):
            return  # unknown types and commands without request_id: dropped (capture ws-malformed-frames.json)
        await handler(ws, frame)

    async def _on_app_server_info(self, ws: web.WebSocketResponse, frame: Json) -> None:
        await self._send(ws, _like(_T["info"], request_id=frame["request_id"]))  # capture ws-app-server-info.json

    async def _on_agent_list(self, ws: web.WebSocketResponse, frame: Json) -> None:
        """capture ws-agent-list-query-*.json: newest activity first, `limit` (default 20), `after` an id."""
        query = frame.get("query") or {}
        agents = sorted(self.agents.values(), key=lambda a: a["last_run_completion"], reverse=True)
        if query.get("after"):
            ids = [a["id"] for a in agents]
            agents = agents[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        agents = agents[: int(query.get("limit") or 20)]
        answer = {"type": "agent_list_response", "request_id": frame["request_id"], "success": True, "agents": agents}
        await self._send(ws, answer)

    async def _on_agent_retrieve(self, ws: web.WebSocketResponse, frame: Json) -> None:
        """capture ws-agent-retrieve.json; an unknown id: ws-agent-retrieve-unknown.json."""
        agent = self.agents.get(str(frame.get("agent_id")))
        answer = {"type": "agent_retrieve_response", "request_id": frame["request_id"], "success": agent is not None,
                  "agent": agent}
        if agent is None:
            answer["error"] = f"Agent {frame.get('agent_id')} not found"
        await self._send(ws, answer)

    def _conversation(self, conv: Conv) -> Json:
        return _like(
            _T["conversation"],
            id=conv.id,
            agent_id=conv.agent_id,
            created_at=conv.created_at,
            updated_at=conv.updated_at,
            last_message_at=conv.messages[-1]["date"] if conv.messages else None,
            summary=conv.summary,
            in_context_message_ids=[m["id"] for m in conv.messages],
        )

    async def _on_conversation_create(self, ws: web.WebSocketResponse, frame: Json) -> None:
        body = frame.get("body") or {}
        conv = Conv(f"local-conv-{next(self._ids)}", body.get("agent_id", ""), body.get("summary"))  # observed 0.34.12
        self.convs[conv.id] = conv
        answer = {"type": "conversation_create_response", "request_id": frame["request_id"], "success": True}
        await self._send(ws, {**answer, "conversation": self._conversation(conv)})  # capture ws-conversation-create

    async def _on_conversation_update(self, ws: web.WebSocketResponse, frame: Json) -> None:
        conv = self.convs[frame["conversation_id"]]
        conv.summary, conv.updated_at = (frame.get("body") or {}).get("summary"), _now()
        answer = {"type": "conversation_update_response", "request_id": frame["request_id"], "success": True}
        await self._send(ws, {**answer, "conversation": self._conversation(conv)})  # capture ws-conversation-update

    async def _on_conversation_list(self, ws: web.WebSocketResponse, frame: Json) -> None:
        agent_id = (frame.get("query") or {}).get("agent_id")
        convs = [c for c in self.convs.values() if agent_id in (None, c.agent_id)]
        convs.sort(key=lambda c: c.updated_at, reverse=True)  # capture ws-conversation-list.json
        listed = [self._conversation(c) for c in convs]
        answer = {"type": "conversation_list_response", "request_id": frame["request_id"], "success": True}
        await self._send(ws, {**answer, "conversations": listed})

    async def _on_conversation_messages_list(self, ws: web.WebSocketResponse, frame: Json) -> None:
        """capture ws-history*.json: desc by default, `before` pages back, `next_before` the last id given."""
        conv = self.convs.get(frame.get("conversation_id", ""))
        if conv is None:
            await self._send(ws, _like(_T["no_history"], request_id=frame["request_id"]))
            return
        query = frame.get("query") or {}
        messages = self.history_of(conv.id)
        if query.get("order", "desc") == "desc":
            messages.reverse()
        if query.get("before"):
            ids = [m["id"] for m in messages]
            messages = messages[ids.index(query["before"]) + 1 :] if query["before"] in ids else []
        limit = int(query.get("limit") or 100)
        page, more = messages[:limit], len(messages) > limit
        answer = _like(_T["history"], request_id=frame["request_id"], messages=page, has_more=more)
        answer["next_before"] = page[-1]["id"] if page else None
        await self._send(ws, answer)

    async def _on_runtime_start(self, ws: web.WebSocketResponse, frame: Json) -> None:
        conv = self.convs.get(frame.get("conversation_id", ""))
        if conv is not None:
            conv.attached.add(ws)  # capture ws-runtime-start-during-turn.json: it receives the turn's frames
            conv.mode = str(frame.get("mode") or conv.mode)
        runtime = {"agent_id": frame.get("agent_id"), "conversation_id": frame.get("conversation_id")}
        answer = {"type": "runtime_start_response", "request_id": frame["request_id"], "success": conv is not None}
        await self._send(ws, {**answer, "runtime": runtime} if conv else {**answer, "error": "Conversation not found"})

    async def _on_abort_message(self, ws: web.WebSocketResponse, frame: Json) -> None:
        await appserver_queue.abort(self, ws, frame, _like(_T["interrupted"]), _T["aborted"])

    async def _on_remove_queue_item(self, ws: web.WebSocketResponse, frame: Json) -> None:
        await appserver_queue.remove(self, ws, frame)

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
            delta = _like(_T["bad_input"]["delta"], message=said, id=f"lifecycle-{uuid.uuid4()}")
            await self._send(ws, _like(_T["bad_input"], delta=delta, runtime=runtime))
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
        accepted = _like(_T["accepted"], request_id=frame.get("request_id"), runtime=runtime)
        accepted["disposition"] = "queued" if queued else "started"  # capture ws-busy-same-conversation-queued
        await self._send(ws, accepted)
        if conv is None or conv.stuck:
            await self._refuse(ws, runtime, turn, conv)
            return
        if unreadable:  # capture ws-image-bad-data.json: the turn fails before any model call, nothing stored
            delta = _like(FAILED_DELTA["delta"], id=f"lifecycle-{uuid.uuid4()}", client_message_ids=[turn.cmid])
            await self._send(ws, _like(FAILED_DELTA, delta=delta, runtime=runtime))
            await self._send(ws, _like(FAILED, turn_id=f"turn-{uuid.uuid4()}", runtime=runtime))
            return
        conv.attached.add(ws)  # the sender receives its turn (capture ws-two-sockets-queue-then-sender-…)
        for parked in conv.queue:  # observed 0.34.12: a new input lets the inputs an abort parked run
            parked.paused = False
        conv.queue.append(turn)
        if queued:
            turn.item_id, turn.enqueued_at = f"q-{next(conv.items)}", _now()
            await appserver_queue.show(self, conv, runtime)
        if not conv.draining:
            conv.draining = True
            task = asyncio.ensure_future(self._drain(conv, runtime))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _approval_response(self, ws: web.WebSocketResponse, frame: Json, runtime: Json, payload: Json) -> None:
        """capture ws-approval-allow.json: accepted, no disposition; capture ws-approval-pending-queue-abort-resume:
        a request_id not pending is refused in words."""
        waiting = self.approvals.get(str(payload.get("request_id")))
        accepted = _like(_T["accepted"], request_id=frame.get("request_id"), runtime=runtime)
        accepted.pop("disposition", None)
        if waiting is None or waiting.done():
            accepted.update(accepted=False, error=appserver_tools.NOT_PENDING)
        else:
            waiting.set_result(payload.get("decision") or {})
        await self._send(ws, accepted)

    async def _refuse(self, ws: web.WebSocketResponse, runtime: Json, turn: Turn, conv: Conv | None) -> None:
        """capture ws-input-unknown-conversation.json; observed 0.34.12 for a stuck conversation (same shape,
        its own words, nothing stored)."""
        said = conv.stuck if conv is not None and conv.stuck else f"Conversation {turn.conversation} not found"
        if conv is not None:
            turn.turn_id = f"turn-{uuid.uuid4()}"  # observed 0.34.12
        await self._send(ws, _like(_T["failed"], turn_id=turn.turn_id, error=said, runtime=runtime))
        delta = _like(_T["loop_error"]["delta"], id=f"lifecycle-{uuid.uuid4()}", date=_now(), message=said)
        await self._send(ws, _like(_T["loop_error"], delta=delta, runtime=runtime))

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
                echo = _like(_T["echo"]["delta"], id=f"user-msg-{uuid.uuid4()}", date=_now())
                echo.update(content=turn.text, otid=turn.cmid)
                await self._emit(conv, _like(_T["echo"], delta=echo), runtime)
            batch += 1
            try:
                await self._run(conv, turn, runtime)
            finally:
                conv.running = None

    def _store(self, conv: Conv, role: str, text: str, parts: list[Json] | None = None, **extra: Any) -> Json:
        # images after the text; an image alone has no text part (capture ws-image-history.json)
        content = [*([{"type": "text", "text": text}] if text or not parts else []), *(parts or [])]
        if role == "user" and not any(m["message_type"] == "user_message" for m in conv.messages):
            content = [_REMINDER, *content]  # README §11: the first one has reminders, your text is last
        message = {"id": f"ui-msg-{next(self._ids)}", "date": _now(), "agent_id": conv.agent_id}
        message.update(conversation_id=conv.id, message_type=f"{role}_message", role=role, content=content, **extra)
        conv.messages.append(message)
        conv.updated_at = message["date"]
        return message

    async def _run(self, conv: Conv, turn: Turn, runtime: Json) -> None:
        """One model call and what the server streams of it (capture ws-runtime-start-and-first-turn.json)."""
        self.inputs.append(turn)
        if conv.interrupted:  # capture ws-abort-during-llm-call.json: inserted before the next user message
            self._store(conv, "user", _INTERRUPTED, otid=str(uuid.uuid4()))
            conv.interrupted = False
        self._store(conv, "user", turn.text, turn.images, otid=turn.cmid)
        turn.run_id = f"local-run-{next(self._runs)}"
        agent = self.agents.get(turn.agent_id) or {"name": "agent"}
        mode = self.modes.get(turn.agent_id, "ok")
        await self._emit(conv, _like(_T["device"]), runtime)
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
            delta = _like(_T["assistant"]["delta"], id=message_id, date=_now(), agent_id=turn.agent_id)
            delta.update(conversation_id=conv.id, content=[{"type": "text", "text": piece}], run_id=turn.run_id)
            delta["seq_id"] = index + 1
            await self._emit(conv, _like(_T["assistant"], delta=delta), runtime)
            await asyncio.sleep(gap)
            if turn.cut:  # observed 0.34.12 (a socket closed mid-reply): only the chunk in flight is kept
                await self._cancelled(conv, turn, runtime, piece)
                return
            if turn.aborted.is_set():  # observed 0.34.12: the stream ends there, nothing stored
                await self._cancelled(conv, turn, runtime, "")
                return
        self._store(conv, "assistant", " ".join(words))
        conv.messages[-1]["id"] = message_id  # the deltas' id is the message's id in history (README §5)
        agent["last_run_completion"] = _now()
        for name in ("usage", "stop"):
            delta = _like(_T[name]["delta"], run_id=turn.run_id)
            await self._emit(conv, _like(_T[name], delta=delta), runtime)
        await self._emit(conv, _like(_T["finished"], turn_id=turn.turn_id, run_id=turn.run_id), runtime)

    def _loop_status(self, conv: Conv, turn: Turn) -> Json:
        runs = {r: [t.cmid] for t in self.inputs if t.conversation == conv.id for r in [*t.earlier_runs, t.run_id] if r}
        loop = _like(_T["loop"], loop_status={**_T["loop"]["loop_status"], "active_run_ids": [turn.run_id]})
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
        cancelled = _like(_T["cancelled"], turn_id=turn.turn_id)
        if turn.streamed:  # observed 0.34.12: the run's id (before `runtime`), once it has one
            keys = list(cancelled)
            keys.insert(keys.index("runtime"), "run_id")
            cancelled = {k: turn.run_id if k == "run_id" else cancelled[k] for k in keys}
        await self._emit(conv, cancelled, runtime)

    async def _replay_500(self, conv: Conv, turn: Turn, runtime: Json) -> None:
        """capture ws-llm-error-500.json, frame for frame after input_accepted, its timing scaled."""
        start = _LLM_500_MS[1]
        for frame, at in zip(_LLM_500[1:], _LLM_500_MS[1:], strict=True):
            await asyncio.sleep(max(0.0, (at - start) * self.scale / 1000))
            start = at
            if frame["type"] == "update_device_status":
                continue
            if frame["type"] == "stream_delta":
                delta = dict(frame["delta"])
                for key in ("agent_id", "conversation_id"):
                    if key in delta:
                        delta[key] = runtime[key]
                frame = _like(frame, delta=delta)
            if frame["type"] == "turn_finished":
                frame = _like(frame, turn_id=turn.turn_id)
            await self._emit(conv, frame, runtime)

    def _closed(self, ws: web.WebSocketResponse) -> None:
        """README §9: closing a socket cancels the turns it started unless another socket is attached."""
        for conv in self.convs.values():
            conv.attached.discard(ws)
            turn = conv.running
            if turn is not None and turn.sender is ws and not conv.attached:
                turn.cut = True
                turn.aborted.set()
