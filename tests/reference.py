"""Paths to the captured wire data the quick suite reads: ``reference/`` in this repository (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "reference"
LETTA = ROOT / "letta"
SLACK = ROOT / "slack"
APP_SERVER = LETTA / "app-server"  # the Letta App Server (WebSocket) captures, a protocol of its own


def letta_captures() -> list[Path]:
    """The REST servers' captures (one folder per version); the App Server's are `app_server_captures`."""
    return sorted(p for p in LETTA.glob("*/*.json") if p.parent != APP_SERVER)


def app_server_captures() -> list[Path]:
    """Every App Server capture (not `index.json`, the generated list, nor `llm-request-sample.json`)."""
    return sorted(p for p in APP_SERVER.glob("*.json") if p.name not in ("index.json", "llm-request-sample.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def parallel_calls_unstreamed() -> list[dict[str, Any]]:
    """A model's two parallel calls and their one return as 0.16.8 gives them without token streaming (and in
    history): ONE `tool_call_message`, `tool_call` the first call and `tool_calls` both, shaped as the captured
    history's `tool_call_message` (parallel-tools-one-approval-history), the calls joined from the captured
    token-streamed send, then that send's captured `tool_return_message` answering both."""
    sent = load(LETTA / "0.16.8" / "parallel-tools-no-approval-send-stream-tokens.json")["response"]["events"]
    frames = [e["data"] for e in sent if isinstance(e["data"], dict)]
    calls: dict[str, dict[str, str]] = {}
    for frame in (f for f in frames if f["message_type"] == "tool_call_message"):
        fragment = frame["tool_call"]
        call = calls.setdefault(fragment["tool_call_id"], {"name": "", "arguments": ""})
        call["name"] += fragment.get("name") or ""
        call["arguments"] += fragment.get("arguments") or ""
    whole = [{**call, "tool_call_id": key} for key, call in calls.items()]
    history = load(LETTA / "0.16.8" / "parallel-tools-one-approval-history.json")["response"]["body"]
    shape = next(m for m in history if m["message_type"] == "tool_call_message")
    returned = next(f for f in frames if f["message_type"] == "tool_return_message")
    assert len(whole) == 2 and len(returned["tool_returns"]) == 2
    return [{**shape, "tool_call": whole[0], "tool_calls": whole}, returned]
