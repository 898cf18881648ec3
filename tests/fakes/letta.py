"""A fake Letta server for tests, speaking the wire formats captured from real Letta servers.

The server is aiohttp running on 127.0.0.1 in its own thread, with its own event loop, so sync
tests can drive it. It plays one of the captured versions ("0.11.7", "0.12.1", "0.16.4",
"0.16.8"). The version decides the response shapes, error bodies and group-send behaviour:
- 0.11.7 runs the group. Sleeptime groups hang.
- 0.12.1 and 0.16.4 answer 500.
- 0.16.8 answers 405.
Shapes come from ``letta_shapes``, which loads them from the captures in
reference/letta in this repository. Where no capture exists, this module says so and borrows one:
- 0.12.1 agent sends, history and errors use the 0.11.7 shapes. 0.12.1 runs the same
  memgpt_v2 agent, but none of this was captured for 0.12.1.
- Stream routes (``/messages/stream``) are not served: they get 404.

As on every real server, a sent user message (with its otid) is stored only when the agent's step ends, and the
send is listed as an active run meanwhile (``letta_runs``; reference README section 19). ``redis=True`` plays a
0.16.8 started with Redis: conversation locks, background runs and stream resume (section 14).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import threading
import time
import traceback
from typing import Any

from aiohttp import web

from . import (
    letta_approvals,
    letta_cancel,
    letta_conversations,
    letta_gateway,
    letta_runs,
    letta_steps,
    letta_stream,
    letta_tools,
)
from . import letta_groups as G
from . import letta_refusals as R
from . import letta_shapes as S
from .letta_controls import LettaControls
from .letta_records import Agent, AgentInput, Handler, Hung, Recorded, ReplySpec, Rule, Stored
from .letta_routes import INTERNAL_ERROR, SHAPES, AgentAndGroupRoutes
from .letta_shapes import new_id


class FakeLetta(LettaControls, AgentAndGroupRoutes):
    """A Letta server double. Set it up, start() it, point the code under test at ``base_url``."""

    def __init__(self, version: str = "0.11.7", api_key: str | None = None, redis: bool = False) -> None:
        if version not in S.VERSIONS:
            raise ValueError(f"unknown Letta version {version!r}; known: {S.VERSIONS}")
        self._version = version
        self.api_key = api_key
        self.redis = redis  # 0.16.8 with Redis: locks, background runs, stream resume
        self._runs: dict[str, letta_runs.Run] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.base_url = ""
        self._lock = threading.Lock()
        self._agents: dict[str, Agent] = {}
        self._groups: dict[str, G.GroupSpec] = {}
        self._replies: dict[str, ReplySpec] = {}
        self._delays: dict[str, float] = {}
        self._tools: dict[str, list[letta_tools.Tool]] = {}
        self._saves_memory: set[str] = set()
        self.ping_interval = 20.0  # seconds between 0.16.8's stream pings while the model works (llmhang-agents-stream)
        self.token_delay = 0.0  # seconds between two token-streamed fragments (0.16.8 stream_tokens)
        self.first_tokens: list[tuple[str, float]] = []  # (agent id, monotonic time) of each stream's first fragment
        self._rules: list[Rule] = []
        self._requests: list[Recorded] = []
        self._inputs: list[AgentInput] = []
        self._overlaps: list[tuple[str, AgentInput, AgentInput]] = []
        self._inflight: dict[str, list[AgentInput]] = {}
        self._hist: dict[str, list[Stored]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}  # id -> the Conversation object (0.16.8)
        self._seq = itertools.count()
        self.cancels: list[tuple[str, str, list[str]]] = []  # (agents|conversations, id, runs cancelled)
        self.step_feedback: list[tuple[str, str | None]] = []  # (step id, feedback) per PATCH (letta_steps.py)
        self.approval_state = letta_approvals.ApprovalState()  # tool approvals (0.16.8, letta_approvals.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._start_error: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Start the server thread; return the base URL (no trailing slash)."""
        if self._thread is not None:
            return self.base_url
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fake-letta", daemon=True)
        self._thread.start()
        if not ready.wait(10) or self._start_error is not None:
            raise RuntimeError(f"fake Letta failed to start: {self._start_error!r}")
        return self.base_url

    def stop(self) -> None:
        """Release hung requests (their connections are dropped unanswered) and shut down."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._astop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        self._loop = self._thread = None

    def __enter__(self) -> FakeLetta:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:  # report to start() instead of dying silently
            self._start_error = exc
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        loop.run_forever()
        loop.close()

    async def _astart(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._entry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _astop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    # ---------------------------------------------------------------- HTTP plumbing
    async def _entry(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        rec = Recorded(request.method, request.path, dict(request.query),
                       {k.lower(): v for k, v in request.headers.items()}, parsed, raw, started=time.monotonic())
        hop = letta_gateway.HOP in rec.headers  # a gateway's own request: the client's is recorded already
        with self._lock:
            if not hop:
                self._requests.append(rec)
            version = self._version
        try:
            resp = await self._handle(request, rec, version, hop)
        except Hung:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError() from None
        except ConnectionResetError:  # the client went away mid-stream (a test killed the bridge)
            with self._lock:
                rec.finished = time.monotonic()
            raise asyncio.CancelledError() from None
        except Exception:  # a bug in a reply callable: answer like Letta does on a crash
            traceback.print_exc()
            if request.writer.output_size and request.transport is not None:
                # A stream already under way: uvicorn (Letta's server) can send no 500 then, and closes the
                # connection instead ("Exception in ASGI application" after the response started).
                request.transport.abort()
                raise asyncio.CancelledError() from None
            resp = self._json(version, 500, INTERNAL_ERROR)
        with self._lock:
            rec.status, rec.finished = resp.status, time.monotonic()
        return resp

    async def _hang(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()
        raise Hung()

    def _json(self, version: str, status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        """A JSON answer encoded like FastAPI's (compact, no ASCII escaping), with uvicorn's headers."""
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        hdrs = {"server": "uvicorn", "content-type": "application/json", **S.extra_headers(version), **(headers or {})}
        return web.Response(status=status, body=data, headers=hdrs)

    def _take_rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.method in ("*", method) and rule.pattern.fullmatch(path):
                    rule.times -= 1
                    return rule
        return None

    @staticmethod
    def _agent_alias(rec: Recorded) -> str:
        """A send to an agent's own thread (`/v1/conversations/default/messages` with `agent_id`) is also matched by
        a rule written for that agent's send route (`/v1/agents/{id}/messages` or `/messages/stream`)."""
        body = rec.body if isinstance(rec.body, dict) else {}
        if rec.path != "/v1/conversations/default/messages" or not body.get("agent_id"):
            return ""
        return f"/v1/agents/{body['agent_id']}/messages" + ("/stream" if body.get("streaming", True) else "")

    def asked(self, rec: Recorded) -> str:
        """The agent or group a send went to: its path's id, or the body's agent_id for the default thread."""
        body = rec.body if isinstance(rec.body, dict) else {}
        if rec.path.startswith("/v1/conversations/default/") and body.get("agent_id"):
            return str(body["agent_id"])
        if rec.path.startswith("/v1/conversations/"):
            with self._lock:
                conversation = self._conversations.get(rec.path.split("/")[3])
            return str(conversation["agent_id"]) if conversation else rec.path.split("/")[3]
        return rec.path.split("/")[3]

    def _authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.api_key}" or \
            headers.get("x-bare-password") == f"password {self.api_key}"

    def _routes(self, version: str) -> list[tuple[str, list[tuple[str, Handler]]]]:
        """Path patterns with their methods. The first method is what a 405 'allow' names (Starlette)."""
        group_msgs: list[tuple[str, Handler]] = [("GET", self._group_history)] if version == "0.16.8" else \
            [("POST", self._group_send), ("GET", self._group_history)]
        group_stream: list[tuple[str, Handler]] = [("GET", self._group_history)] if version == "0.16.8" else \
            [("POST", self._group_stream)]
        return [
            (r"/v1/health/", [("GET", self._health)]),
            (r"/v1/agents/", [("GET", self._agent_list)]),
            (r"/v1/agents/(?P<agent_id>[^/]+)", [("GET", self._agent_get)]),
            (r"/v1/agents/(?P<agent_id>[^/]+)/messages", [("GET", self._agent_history), ("POST", self._agent_send)]),
            (r"/v1/groups/", [("GET", self._group_list)]),
            (r"/v1/groups/count", [("GET", self._group_count)]),
            (r"/v1/groups/(?P<group_id>[^/]+)", [("GET", self._group_get)]),
            (r"/v1/groups/(?P<group_id>[^/]+)/messages", group_msgs),
            (r"/v1/agents/(?P<agent_id>[^/]+)/messages/stream", [("POST", self._agent_stream)]),
            (r"/v1/groups/(?P<group_id>[^/]+)/messages/stream", group_stream),
            *letta_runs.routes(self, version),
            *(letta_conversations.routes(self) if version == "0.16.8" else []),
            *(letta_cancel.routes(self) if version == "0.16.8" else []),
            *(letta_cancel.routes_0117(self) if version == "0.11.7" else []),
            *(letta_steps.routes(self) if version == "0.16.8" else []),
        ]

    async def _agent_stream(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.StreamResponse:
        return await letta_stream.agent_stream(self, request, rec, v, p)

    async def _group_stream(self, request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.StreamResponse:
        return await letta_stream.group_stream(self, request, rec, v, p)

    def _shapes(self, version: str) -> S.Shapes:
        return SHAPES[version]

    def _group_spec(self, group_id: str) -> G.GroupSpec:
        with self._lock:
            return copy.deepcopy(self._groups[group_id])

    async def _handle(self, request: web.Request, rec: Recorded, v: str, hop: bool = False) -> web.StreamResponse:
        rule = None if hop else \
            self._take_rule(rec.method, rec.path) or self._take_rule(rec.method, self._agent_alias(rec))
        if rule is not None:
            if rule.kind == "gateway":
                return await letta_gateway.forward_then_fail(self, request, rec.raw, rule)
            if rule.kind == "hang":
                await self._hang()
            if rule.kind == "busy":
                await asyncio.sleep(rule.delay)
                return self._json(v, 409, R.conversation_busy(new_id("run")))
            if rule.delay:
                await asyncio.sleep(rule.delay)
            hdrs = {"server": "uvicorn", **S.extra_headers(v)}
            if rule.raw is not None:
                return web.Response(status=rule.status, body=rule.raw, headers={**hdrs, **(rule.headers or {})})
            return self._json(v, rule.status, INTERNAL_ERROR if rule.body is None else rule.body, rule.headers)
        if self.api_key is not None and not (rec.method == "GET" and rec.path == "/v1/health/") \
                and not self._authorized(rec.headers):
            return self._json(v, 401, S.body(v, "auth-missing"))
        approvals = await letta_approvals.handle(self, request, rec)
        if approvals is not None:
            return approvals
        routes = self._routes(v)
        allow: str | None = None
        for pattern, methods in routes:
            m = re.fullmatch(pattern, rec.path)
            if m is None:
                continue
            for method, handler in methods:
                if method == rec.method or (rec.method == "HEAD" and method == "GET"):
                    return await handler(request, rec, v, m.groupdict())
            allow = allow or methods[0][0]
        if allow is not None:
            return self._json(v, 405, S.body(v, "error-group-send-wrong-method"), {"allow": allow})
        toggled = rec.path[:-1] if rec.path.endswith("/") else rec.path + "/"
        if rec.path != "/" and any(re.fullmatch(p, toggled) for p, _ in routes):  # Starlette redirect_slashes
            query = f"?{request.query_string}" if request.query_string else ""
            hdrs = {"server": "uvicorn", "location": f"http://{request.host}{toggled}{query}", **S.extra_headers(v)}
            return web.Response(status=307, headers=hdrs)
        return self._json(v, 404, S.body(v, "error-unknown-route"))

    # ---------------------------------------------------------------- turns and history (G.TurnHost)
    def _agent_name(self, agent_id: str) -> str:
        with self._lock:
            return self._agents[agent_id].name

    def _store(self, agent_id: str, group_id: str | None, msgs: list[dict[str, Any]],
               conversation: str | None = None) -> None:
        with self._lock:
            self._hist.setdefault(agent_id, []).extend(
                Stored(next(self._seq), group_id, m, conversation) for m in msgs)

    def step_ids(self) -> set[str]:
        """Every step a message the fake stored came from."""
        with self._lock:
            return {str(s.msg["step_id"]) for hist in self._hist.values() for s in hist if s.msg.get("step_id")}

    def _begin_input(self, agent_id: str, text: str, messages: list[dict[str, Any]], otid: str | None,
                     name: str | None, conversation: str | None = None) -> AgentInput:
        """Overlaps are counted per thread: two conversations of one agent may run at once, as on 0.16.8."""
        with self._lock:
            agent = self._agents[agent_id]
            inp = AgentInput(agent_id, agent.name, text, copy.deepcopy(messages), otid, name, time.monotonic(),
                             conversation=conversation)
            key = conversation or agent_id
            running = self._inflight.setdefault(key, [])
            self._overlaps.extend((key, other, inp) for other in running)
            running.append(inp)
            self._inputs.append(inp)
        return inp

    def _end_input(self, inp: AgentInput) -> None:
        with self._lock:
            inp.finished = time.monotonic()
            self._inflight[inp.conversation or inp.agent_id].remove(inp)

    async def _llm_delay(self, agent_id: str) -> None:
        with self._lock:
            delay = self._delays.get(agent_id, 0.0)
        if delay:
            await asyncio.sleep(delay)

    def _reply_for(self, agent_id: str, text: str, default: list[str] | None = None) -> list[str]:
        with self._lock:
            spec = self._replies.get(agent_id)
            name = self._agents[agent_id].name
        if spec is None:
            return list(default) if default is not None else [f"{name} says hi"]
        result = spec(text) if callable(spec) else spec
        return [result] if isinstance(result, str) else list(result)

    async def _run_turn(self, agent_id: str, text: str, messages: list[dict[str, Any]], otid: str | None,
                        name: str | None, default: list[str] | None = None,
                        conversation: str | None = None) -> list[str]:
        """One agent turn: counted as an input, in flight for the agent's delay, then its replies."""
        replies, _ = await self._run_cancellable(agent_id, text, messages, otid, name, default, conversation)
        return replies

    async def _run_cancellable(self, agent_id: str, text: str, messages: list[dict[str, Any]], otid: str | None,
                               name: str | None, default: list[str] | None = None, conversation: str | None = None,
                               run_id: str | None = None) -> tuple[list[str], bool]:
        """`_run_turn`, also saying whether a cancel reached the run (the model call is never interrupted)."""
        inp = self._begin_input(agent_id, text, messages, otid, name, conversation)
        inp.run_id = run_id
        try:
            await self._llm_delay(agent_id)
            return self._reply_for(agent_id, text, default), inp.cancelled
        finally:
            self._end_input(inp)
