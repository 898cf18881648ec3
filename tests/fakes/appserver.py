"""A fake Letta App Server on 127.0.0.1: the WebSocket protocol and `GET /app-server-info`, as captured.

Every frame it sends is a frame of a capture in reference/letta/app-server/ (`CAPTURED`, appserver_frames.py)
with only its ids, texts, counters and times replaced, so field names, their order and nulls are the real
server's. Each behaviour names its source: "capture <file>" (0.32.18, recorded) or "observed 0.34.12" (seen on a
real App Server run here, see tests/real/test_appserver_real.py and the README's §9). Its turns are in
appserver_turns.py.

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
import itertools
import json
import threading
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import appserver_queue, appserver_tools
from tests.fakes.appserver_frames import (
    CAPTURED,
    Conv,
    Json,
    Turn,
    like,
    now,
)
from tests.fakes.appserver_turns import AppServerTurns


class FakeAppServer(AppServerTurns):
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
        self.refuse: list[str] = []  # the next inputs refused in these words (`accepted: false`), nothing stored
        self.tools: dict[str, list[appserver_tools.Tool]] = {}  # agent id -> the tools it calls before replying
        self.approvals: dict[str, asyncio.Future[Json]] = {}  # control_request id -> the client's decision
        self._ids = itertools.count(1)
        self._runs = itertools.count(1)
        self._seq: dict[web.WebSocketResponse, itertools.count[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
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
        agent = like(CAPTURED["agent"], id=agent_id, name=name, description=f"agent {name}", last_run_completion=now())
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

    def restart(self, down: float = 0.0) -> None:
        """The server process killed and started again, in one step on the fake's loop; this returns at once.
        observed 0.34.12 (SIGTERM then a new process, mid-turn): the running turn ends there, nothing more of it is
        sent or stored, the cut-off reply is gone from history, no conversation is left stuck (a follow-up goes to
        the same conversation), and the client sees its socket close. capture
        restart-ws-turn-existing-conversation.json: run ids start again at local-run-1. With `down`, the port
        refuses connections for that many seconds first (observed 0.34.12: about 3-13 s)."""
        asyncio.run_coroutine_threadsafe(self._restart(down), self._loop_now()).result(10)

    async def _restart(self, down: float) -> None:
        if down > 0:
            await self._refuse_for(down)
        drains = [c.drain for c in self.convs.values() if c.drain is not None and not c.drain.done()]
        for task in drains:  # unlike a socket closed under a live server (_closed): no cut-off stub, not stuck
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        for ws in list(self._seq):
            closing = asyncio.ensure_future(ws.close())
            self._tasks.add(closing)
            closing.add_done_callback(self._tasks.discard)
        for conv in self.convs.values():
            conv.queue.clear()  # the inputs queued behind it died with the process
            conv.attached.clear()
            conv.stuck = None
            conv.messages = [m for m in conv.messages if not m.get("_cut")]
        self._runs = itertools.count(1)

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def _refuse_for(self, down: float) -> None:
        """Close the listener, and open it again on the same port after `down` seconds."""
        assert self._site is not None and self._runner is not None
        await self._site.stop()
        runner = self._runner

        async def reopen() -> None:
            await asyncio.sleep(down)
            self._site = web.TCPSite(runner, "127.0.0.1", self.port)
            await self._site.start()

        task = asyncio.ensure_future(reopen())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        self._site = site = web.TCPSite(self._runner, "127.0.0.1", 0)
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
        return web.json_response(CAPTURED["info"])  # capture http-app-server-info.json

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
            frame = like(frame, event_seq=seq, emitted_at=now())
            frame["idempotency_key"] = f"{frame['type']}:{seq}:{uuid.uuid4()}"
        await ws.send_str(json.dumps(frame, separators=(",", ":")))

    async def _emit(self, conv: Conv, frame: Json, runtime: Json) -> None:
        """A runtime event goes to every socket attached to the conversation (capture ws-two-sockets-who-receives)."""
        frame = like(frame, runtime=runtime) if "runtime" in frame else frame
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
        await self._send(ws, like(CAPTURED["info"], request_id=frame["request_id"]))  # capture ws-app-server-info.json

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
        return like(
            CAPTURED["conversation"],
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
        answer = {"type": "conversation_create_response", "request_id": frame["request_id"], "success": True}
        agent_id = str(body.get("agent_id", ""))
        if agent_id not in self.agents:  # an unknown or deleted agent (test_appserver_real checks 0.34.12)
            await self._send(ws, {**answer, "success": False, "conversation": None,
                                  "error": f"Agent {agent_id} not found"})
            return
        conv = Conv(f"local-conv-{next(self._ids)}", agent_id, body.get("summary"))  # observed 0.34.12
        self.convs[conv.id] = conv
        await self._send(ws, {**answer, "conversation": self._conversation(conv)})  # capture ws-conversation-create

    async def _on_conversation_update(self, ws: web.WebSocketResponse, frame: Json) -> None:
        answer = {"type": "conversation_update_response", "request_id": frame["request_id"], "success": True}
        conv = self.convs.get(str(frame.get("conversation_id", "")))
        if conv is None:  # test_appserver_real checks 0.34.12's words
            await self._send(ws, {**answer, "success": False, "conversation": None,
                                  "error": f"Conversation {frame.get('conversation_id')} not found"})
            return
        conv.summary, conv.updated_at = (frame.get("body") or {}).get("summary"), now()
        await self._send(ws, {**answer, "conversation": self._conversation(conv)})  # capture ws-conversation-update

    async def _on_agent_delete(self, ws: web.WebSocketResponse, frame: Json) -> None:
        """capture ws-agent-delete.json; an unknown id: test_appserver_real checks 0.34.12."""
        agent_id = str(frame.get("agent_id"))
        found = self.agents.pop(agent_id, None) is not None
        answer = {"type": "agent_delete_response", "request_id": frame["request_id"], "success": found,
                  "agent_id": agent_id}
        if not found:
            answer["error"] = f"Agent {agent_id} not found"
        await self._send(ws, answer)

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
            await self._send(ws, like(CAPTURED["no_history"], request_id=frame["request_id"]))
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
        answer = like(CAPTURED["history"], request_id=frame["request_id"], messages=page, has_more=more)
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
        await appserver_queue.abort(self, ws, frame, like(CAPTURED["interrupted"]), CAPTURED["aborted"])

    async def _on_remove_queue_item(self, ws: web.WebSocketResponse, frame: Json) -> None:
        await appserver_queue.remove(self, ws, frame)

    def _closed(self, ws: web.WebSocketResponse) -> None:
        """README §9: closing a socket cancels the turns it started unless another socket is attached."""
        for conv in self.convs.values():
            conv.attached.discard(ws)
            turn = conv.running
            if turn is not None and turn.sender is ws and not conv.attached:
                turn.cut = True
                turn.aborted.set()
