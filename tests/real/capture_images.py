"""Record how a real Letta App Server (PyPI letta==0.34.12) takes image content parts in an `input`, in the
WebSocket capture format of reference/letta/app-server/README.md ("File format"), for the fake App Server.

    python -m tests.real.capture_images reference/letta/app-server

Starts the fake model of fake_model.py and the App Server (../shared/tools/real-letta/letta-server.sh, needs
REAL_LETTA_HOME where it is installed), records the files named in CASES plus `ws-image-history.json`, and stops
both. Each file gains `llm_user_content`: the last user message's content as the fake model received it (image
data cut to 40 characters).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.real.fake_model import MODEL, FakeModel
from tests.real.test_appserver_real import SCRIPT, _free_port, _subreaper

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
# A 1x1 BMP (BITMAPINFOHEADER, 24-bit): a type the App Server's image normaliser does not list.
BMP = base64.b64encode(
    b"BM" + (58).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
    + (40).to_bytes(4, "little") + (1).to_bytes(4, "little") + (1).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(24) + b"\xff\x00\x00\x00"
).decode()


def image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


CASES: list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]] = [
    ("ws-image-input", "a user message whose content is a text part and a base64 PNG image part",
     [{"type": "text", "text": "what is in this image?"}, image(PNG)], {}),
    ("ws-image-only", "a user message whose content is only a base64 PNG image part", [image(PNG)], {}),
    ("ws-image-bad-data", "an image part whose data is not base64 of an image (image_failure_mode not set: strict)",
     [{"type": "text", "text": "broken image"}, image("not-base64!!")], {}),
    ("ws-image-bad-data-drop", "the same broken image part with image_failure_mode 'drop'",
     [{"type": "text", "text": "broken image, dropped"}, image("not-base64!!")], {"image_failure_mode": "drop"}),
    ("ws-image-bmp", "an image part of media type image/bmp (a real 1x1 BMP)",
     [{"type": "text", "text": "a bitmap"}, image(BMP, "image/bmp")], {}),
]


class Recorder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.connection: dict[str, Any] = {}

    def _t(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def open(self, session: aiohttp.ClientSession) -> None:
        self.ws = await session.ws_connect(self.url, autoping=True)
        response = self.ws._response
        self.connection = {"id": "a", "url": self.url, "request_headers": {},
                           "handshake": {"status": response.status, "reason": response.reason,
                                         "headers": [[k, v] for k, v in response.headers.items()]}}
        self.events.append({"conn": "a", "t_ms": self._t(), "event": "open"})

    def restart(self) -> None:
        self.frames, self.started = [], time.monotonic()
        self.events = [{"conn": "a", "t_ms": 0, "event": "open"}]

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        text = json.dumps(frame, separators=(",", ":"))
        self.frames.append({"conn": "a", "dir": "sent", "t_ms": self._t(), "text": text, "json": frame})
        await self.ws.send_str(text)

    async def until(self, done: Any, timeout: float = 90.0) -> dict[str, Any]:
        assert self.ws is not None
        ends = time.monotonic() + timeout
        while True:
            message = await self.ws.receive(timeout=max(0.1, ends - time.monotonic()))
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket ended: {message}")
            parsed = json.loads(message.data)
            self.frames.append({"conn": "a", "dir": "received", "t_ms": self._t(), "text": message.data,
                                "json": parsed})
            if done(parsed):
                return dict(parsed)

    def save(self, out: Path, name: str, note: str, **extra: Any) -> None:
        record = {"letta_code_version": "0.34.12", "captured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "phase": "images", "transport": "websocket", "note": note, "connections": [self.connection],
                  "frames": self.frames, "socket_events": [*self.events, {"conn": "a", "t_ms": self._t(),
                                                                           "event": "close"}],
                  "elapsed_s": round(self._t() / 1000, 3), **extra}
        (out / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print("wrote", name)


def _cut(content: Any) -> Any:
    content = copy.deepcopy(content)
    for part in content if isinstance(content, list) else []:
        url = (part.get("image_url") or {}).get("url") if isinstance(part, dict) else None
        if isinstance(url, str) and len(url) > 40:
            part["image_url"]["url"] = url[:40] + "...(cut)"
    return content


def _last_user(model: FakeModel) -> Any:
    if not model.requests:
        return "no model request"
    users = [m for m in model.requests[-1].get("messages") or [] if m.get("role") == "user"]
    return _cut(users[-1].get("content")) if users else "no user message"


async def capture(url: str, model: FakeModel, out: Path) -> None:
    async with aiohttp.ClientSession() as session:
        rec = Recorder(url)
        await rec.open(session)
        body = {"name": "gus", "model": f"openai-compatible/{MODEL}", "system": "You are gus. My name is gus."}
        await rec.send({"type": "agent_create", "request_id": "agent-gus", "body": body})
        agent = (await rec.until(lambda f: f.get("request_id") == "agent-gus"))["agent"]["id"]
        await rec.send({"type": "conversation_create", "request_id": "conv-gus", "body": {"agent_id": agent}})
        conversation = (await rec.until(lambda f: f.get("request_id") == "conv-gus"))["conversation"]["id"]
        runtime = {"agent_id": agent, "conversation_id": conversation}
        for name, note, content, options in CASES:
            rec.restart()
            before = len(model.requests)
            otid = f"cm-{name}-{uuid.uuid4().hex[:8]}"
            payload = {"kind": "create_message", "client_tool_allowlist": [], **options,
                       "messages": [{"role": "user", "content": content, "client_message_id": otid}]}
            await rec.send({"type": "input", "request_id": f"input-{name}", "runtime": runtime, "payload": payload})
            await rec.until(lambda f: f.get("type") == "turn_finished")
            await asyncio.sleep(0.5)  # a loop_error can follow turn_finished
            called = len(model.requests) > before
            rec.save(out, name, note, fake_llm_calls_during_capture=len(model.requests) - before,
                     llm_user_content=_last_user(model) if called else "no model request")
        rec.restart()
        query = {"order": "asc", "limit": 50}
        await rec.send({"type": "conversation_messages_list", "request_id": "history", "conversation_id":
                        conversation, "query": query})
        await rec.until(lambda f: f.get("request_id") == "history")
        rec.save(out, "ws-image-history", "conversation_messages_list (asc) of the conversation the image inputs went"
                 " to: how the stored user messages hold the image parts")
        assert rec.ws is not None
        await rec.ws.close()


def main(out: Path) -> None:
    _subreaper()
    model = FakeModel()
    model.start()
    port = _free_port()
    started = subprocess.run([str(SCRIPT), "start", "app-server", str(port), model.url], capture_output=True,
                             text=True, timeout=120)
    if started.returncode != 0:
        model.stop()
        raise SystemExit(started.stderr)
    try:
        asyncio.run(capture(f"ws://127.0.0.1:{port}/ws", model, out))
    finally:
        subprocess.run([str(SCRIPT), "stop", str(port)], capture_output=True, timeout=60)
        model.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
