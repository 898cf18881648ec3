"""The fake App Server's captured frames (each a template: tests/fakes/appserver.py replaces only ids, texts,
counters and times) and its state: a conversation, and a turn in it."""

from __future__ import annotations

import asyncio
import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.reference import APP_SERVER, load

Json = dict[str, Any]


def frames(name: str) -> list[Json]:
    return [f["json"] for f in load(APP_SERVER / name)["frames"] if f["dir"] == "received"]


def first(name: str, type_: str, message_type: str | None = None, **match: Any) -> Json:
    for frame in frames(name):
        if frame.get("type") != type_:
            continue
        if message_type is not None and frame.get("delta", {}).get("message_type") != message_type:
            continue
        if all(frame.get(k) == v or frame.get("loop_status", {}).get(k) == v for k, v in match.items()):
            return frame
    raise LookupError(f"{name}: no {type_} {message_type or ''} {match}")


TURN = "ws-runtime-start-and-first-turn.json"
CAPTURED: dict[str, Json] = {
    "info": load(APP_SERVER / "http-app-server-info.json")["response"]["body"],
    "agent": first("ws-agent-create-alice.json", "agent_create_response")["agent"],
    "conversation": first("ws-conversation-create-and-turn.json", "conversation_create_response")["conversation"],
    "accepted": first(TURN, "input_accepted"),
    "device": first(TURN, "update_device_status"),
    "loop": first(TURN, "update_loop_status", active_run_ids=["local-run-2"]),
    "assistant": first(TURN, "stream_delta", "assistant_message"),
    "usage": first(TURN, "stream_delta", "usage_statistics"),
    "stop": first(TURN, "stream_delta", "stop_reason"),
    "finished": first(TURN, "turn_finished"),
    "echo": first("ws-busy-same-conversation-queued.json", "stream_delta", "user_message"),
    "failed": first("ws-input-unknown-conversation.json", "turn_finished"),
    "loop_error": first("ws-input-unknown-conversation.json", "stream_delta", "loop_error"),
    "bad_input": first("ws-malformed-frames.json", "stream_delta", "loop_error"),
    "interrupted": first("ws-abort-during-llm-call.json", "stream_delta", "status"),
    "aborted": first("ws-abort-during-llm-call.json", "abort_message_response"),
    "cancelled": first("ws-abort-during-llm-call.json", "turn_finished"),
    "history": first("ws-history-desc-limit3.json", "conversation_messages_list_response"),
    "no_history": first("ws-history-unknown-conversation.json", "conversation_messages_list_response"),
}
LLM_500 = frames("ws-llm-error-500.json")  # the whole captured retry ladder, replayed
LLM_500_MS = [f["t_ms"] for f in load(APP_SERVER / "ws-llm-error-500.json")["frames"] if f["dir"] == "received"]
REMINDER = {
    "type": "text",
    "text": "<system-reminder>\nThis is an automated message providing context.\n</system-reminder>",
}
INTERRUPTED = "<system-reminder>The user interrupted the active stream.</system-reminder>\n"


def like(template: Json, **values: Any) -> Json:
    """A copy of a captured frame with some values replaced (keys keep their captured order)."""
    out = copy.deepcopy(template)
    out.update(values)
    return out


def now() -> str:
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
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    messages: list[Json] = field(default_factory=list)
    queue: list[Turn] = field(default_factory=list)
    running: Turn | None = None
    stuck: str | None = None  # observed 0.34.12: "already has an active run (local-run-M)" until a restart
    interrupted: bool = False
    mode: str = "unrestricted"  # runtime_start's permission mode (README §7)
    attached: set[web.WebSocketResponse] = field(default_factory=set)
    draining: bool = False  # a task runs its queue
    drain: asyncio.Future[None] | None = None  # that task (a restart ends it, as killing the process does)
    items: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
