"""The fake Letta's memory save before a reply (`FakeLetta.set_saves_memory`), as real servers store it
(reference/letta/README.md §24, captures `agents-send-memory-heartbeat` and `agents-history-memory-heartbeat`).

0.11.7 (and 0.12.1, which borrows its shapes) stores the step's reasoning, the `memory_insert` call with
`request_heartbeat: true`, its return and then the heartbeat as a `user_message` of packed JSON; the send's answer
lists all but that user message. 0.16.8 stores the call and its return only. Every message is a copy of the
capture's, only ids, otids, dates and the step replaced.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from . import letta_shapes as S
from .letta_shapes import alert_time, new_id, otid_from_id, wire_date
from .letta_tools import tool_messages


def _captured() -> list[dict[str, Any]]:
    """What 0.11.7 stored between the user's message and the step that answers it."""
    history = S.body("0.11.7", "agents-history-memory-heartbeat")
    asked = next(i for i, m in enumerate(history) if m.get("otid") and m["message_type"] == "user_message")
    beat = next(i for i, m in enumerate(history) if m["message_type"] == "user_message" and i > asked)
    return history[asked + 1 : beat + 1]


_SAVED = _captured()
_HEARTBEAT = json.loads(_SAVED[-1]["content"])


def heartbeat_text() -> str:
    """A heartbeat's content as 0.11.7 packs it (letta/system.py get_heartbeat: JSON indented by two)."""
    return json.dumps({**_HEARTBEAT, "time": alert_time(datetime.now(UTC))}, indent=2)


def memory_save(version: str, step_id: str, run_id: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what history stores, what the send's answer lists) for the agent's memory save before its reply."""
    if S.is_v16(version):
        saved = tool_messages([("memory_insert", True)], step_id, run_id)
        return saved, saved
    call_mid, return_mid, beat_mid = new_id("message"), new_id("message"), new_id("message")
    call_id = f"call_{call_mid[8:].replace('-', '')[:24]}"
    out: list[dict[str, Any]] = []
    for message in copy.deepcopy(_SAVED):
        kind = message["message_type"]
        mid = call_mid if kind in ("reasoning_message", "tool_call_message") else \
            return_mid if kind == "tool_return_message" else beat_mid
        index = 1 if kind == "tool_call_message" else 0
        message.update(id=mid, date=wire_date(), step_id=step_id, run_id=run_id,
                       otid=None if kind == "user_message" else otid_from_id(mid, index))
        if kind == "tool_call_message":
            message["tool_call"]["tool_call_id"] = call_id
        if kind == "tool_return_message":
            message["tool_call_id"] = call_id
        if kind == "user_message":
            message["content"] = heartbeat_text()
        out.append(message)
    return out, [m for m in out if m["message_type"] != "user_message"]
