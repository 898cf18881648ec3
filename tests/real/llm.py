"""An OpenAI-compatible model server for the real Letta servers of the real-server stage (loopback only).

It answers deterministically, from what Letta sends it:
- the agent's name comes from its persona block ("My name is alice."); its reply is "<name> says hi";
- it calls `send_message` when Letta offers it (0.11.7's memgpt_v2 agents), with every other required argument
  filled ("Replying to the user." for the inner thoughts), and answers in plain content otherwise (0.16.8);
- a supervisor manager calls `send_message_to_all_agents_in_group` first (unless the bridge already gave it its
  workers' answers); a dynamic group's manager names "alice", then says "DONE!" once alice has spoken;
  "use tool NAME" in the user's text calls tool NAME (several: each in turn, one per model call); with "[say first]"
  the first call also says "Let me do that." (content beside the tool call, in the same model answer);
- "please remember" in the user's text makes the first call `memory_insert` with `request_heartbeat: true`, as a real
  model keeps going after saving to memory (tests/real/capture_heartbeat.py);
- "[slow N]" in the latest user text makes each call on it take N seconds, "[fail]" answers 500, "[long N]" makes
  the reply N words ("w0 w1 ..."); `POST /_control`
  sets a delay for every call ({"delay": 6}) and `GET /_calls` lists (agent name, latest user text) per call;
- `stream: true` gets SSE chunks (content word by word, a tool call in two argument fragments);
- `/v1/models` lists gpt-4-turbo, `/v1/embeddings` gives a fixed 1536-dimension vector per input.

Run it alone with `python -m tests.real.llm PORT`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
import uuid
from typing import Any

from aiohttp import web

MODEL = "gpt-4-turbo"
DIM = 1536
NAME = re.compile(r"My name is (\w+)")
SLOW = re.compile(r"\[slow (\d+(?:\.\d+)?)\]")
LONG = re.compile(r"\[long (\d+)\]")
TOOL = re.compile(r"use tool (\w+)")
FIRST = "Let me do that."
SUPERVISOR_TOOL = "send_message_to_all_agents_in_group"
REMEMBER = "please remember"
CHOOSE = re.compile(r"Choose the most suitable agent|You choose who speaks next")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _fill(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Every required argument of a tool: the given values, inner thoughts, heartbeat off, a word otherwise."""
    args: dict[str, Any] = {}
    props = schema.get("properties") or {}
    for key in [*schema.get("required", []), *values]:
        if key in args:
            continue
        if key in values:
            args[key] = values[key]
        elif key in ("inner_thoughts", "thinking", "reasoning"):
            args[key] = "Replying to the user."
        elif key == "request_heartbeat":
            args[key] = False
        else:
            kind = (props.get(key) or {}).get("type")
            args[key] = False if kind == "boolean" else 0 if kind in ("integer", "number") else "ok"
    return args


def _calls_since_user(messages: list[dict[str, Any]]) -> int:
    """How many tool calls the model made since the latest user message (each asked tool is called once)."""
    count = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "assistant":
            count += len(message.get("tool_calls") or [])
    return count


class FakeLLM:
    def __init__(self) -> None:
        self.delay = 0.0
        self.calls: list[dict[str, Any]] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ lifecycle (a thread of its own)
    def start(self, port: int = 0) -> str:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(port, ready), name="fake-llm", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the fake LLM did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self, port: int, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._astart(port))
        ready.set()
        loop.run_forever()

    async def _astart(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/_control", self._control)
        app.router.add_get("/_calls", self._calls)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    # ------------------------------------------------------------ routes
    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}
        embed = {"id": "text-embedding-3-small", "object": "model", "created": 0, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model, embed]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.01] * DIM} for i in range(len(items))]
        return web.json_response({"object": "list", "data": data, "model": body.get("model", ""),
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    async def _control(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "delay" in body:
            self.delay = float(body["delay"])
        if body.get("reset"):
            self.calls.clear()
        return web.json_response({"delay": self.delay})

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response(self.calls)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or []
        system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
        found = NAME.search(system)
        name = found.group(1) if found else "agent"
        last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        last = messages[-1] if messages else {}
        self.calls.append({"name": name, "user": last_user[-300:], "at": time.time(), "last_role": last.get("role")})
        slow = SLOW.search(last_user)
        delay = float(slow.group(1)) if slow and last.get("role") == "user" else self.delay
        if delay:
            await asyncio.sleep(delay)
        if "[fail]" in last_user and last.get("role") == "user":
            return web.json_response({"error": {"message": "the fake LLM was told to fail", "type": "server_error"}},
                                     status=500)
        tools = {t["function"]["name"]: t["function"] for t in body.get("tools") or [] if t.get("type") == "function"}
        reply = f"{name} says hi"
        long = LONG.search(last_user)
        if long:
            reply = " ".join(f"w{i}" for i in range(int(long.group(1))))
        if CHOOSE.search(last_user):  # a dynamic group's manager (0.11.7's prompt or the bridge runner's)
            reply = "DONE!" if "alice says hi" in last_user else "alice"
        call: tuple[str, dict[str, Any]] | None = None
        asked = [tool for tool in TOOL.findall(last_user) if tool in tools]
        called = _calls_since_user(messages)
        if last.get("role") == "user" and SUPERVISOR_TOOL in tools and "Your workers answered:" not in last_user:
            call = (SUPERVISOR_TOOL, _fill(tools[SUPERVISOR_TOOL]["parameters"], {"message": last_user}))
        elif called < len(asked):
            call = (asked[called], _fill(tools[asked[called]]["parameters"], {}))
        elif last.get("role") == "user" and REMEMBER in last_user and "memory_insert" in tools:
            # 0.11.7's memory_insert takes new_str, 0.16.8's new_string: give the one its schema names.
            props = tools["memory_insert"]["parameters"].get("properties", {})
            text_key = "new_string" if "new_string" in props else "new_str"
            values = {"label": "human", text_key: "likes tea", "request_heartbeat": True}
            call = ("memory_insert", _fill(tools["memory_insert"]["parameters"], values))
        if call is None and "send_message" in tools:
            call = ("send_message", _fill(tools["send_message"]["parameters"], {"message": reply}))
        first = FIRST if call and called == 0 and "[say first]" in last_user and last.get("role") == "user" else None
        if body.get("stream"):
            return await self._stream(request, body, reply, call, first)
        message: dict[str, Any] = {"role": "assistant", "content": first if call else reply}
        if call:
            message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                      "function": {"name": call[0], "arguments": json.dumps(call[1])}}]
        return web.json_response({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        })

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: str,
                      call: tuple[str, dict[str, Any]] | None, first: str | None = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

        async def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        await chunk({"role": "assistant", "content": ""})
        if call and first:
            await chunk({"content": first})
        if call:
            arguments = json.dumps(call[1])
            half = len(arguments) // 2
            await chunk({"tool_calls": [{"index": 0, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                                         "function": {"name": call[0], "arguments": arguments[:half]}}]})
            await chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]})
            await chunk({}, "tool_calls")
        else:
            for word in re.findall(r"\S+\s*", reply):
                await chunk({"content": word})
                await asyncio.sleep(0.05)
            await chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL, "choices": [],
                     "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
            await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


if __name__ == "__main__":
    llm = FakeLLM()
    print(llm.start(int(sys.argv[1]) if len(sys.argv) > 1 else 0), flush=True)
    threading.Event().wait()
