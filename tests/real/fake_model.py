"""A tiny OpenAI-compatible model server for the real App Server stage: `GET /v1/models` and streamed (or plain)
`POST /v1/chat/completions`, the two routes the App Server needs (../shared/tools/real-letta/README.md).

It answers "<name> says hi" (the name from "My name is NAME" in the system prompt), one word per chunk, so that a
reply's join by `delta.id` is visible. `mode` switches it: "ok", "slow:S" (wait S seconds, then answer),
"hang" (never answers until the server stops), "500" (every call fails), "drip:S" (the first word at once, the
rest S seconds later: a run whose id the server has streamed, still running). Every request body is kept in
`requests`, so a test can see which tools the App Server offered the model.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any

from aiohttp import web

MODEL = "fake-model"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""


def _name(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") in ("system", "developer"):
            found = re.search(r"My name is (\w+)", _text(message.get("content")))
            if found:
                return found.group(1)
    return "agent"


class FakeModel:
    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve(ready))
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake model did not start")

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        runner, loop = self._runner, self._loop
        if self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "fake"}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        mode = self.mode
        if mode == "500":
            return web.json_response({"error": {"message": "fake model failure", "type": "server_error"}}, status=500)
        if mode == "hang":
            assert self._stopping is not None
            await self._stopping.wait()
            return web.json_response({"error": {"message": "stopped", "type": "server_error"}}, status=500)
        if mode.startswith("slow:"):
            await asyncio.sleep(float(mode.split(":", 1)[1]))
        words = f"{_name(body.get('messages') or [])} says hi".split(" ")
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": MODEL}
            await response.write(f"data: {json.dumps({**data, 'choices': [choice], **extra})}\n\n".encode())

        await chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(words):
            await chunk({"content": word if index == len(words) - 1 else word + " "})
            await asyncio.sleep(float(mode.split(":", 1)[1]) if mode.startswith("drip:") and index == 0 else 0.01)
        await chunk({}, "stop", usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
