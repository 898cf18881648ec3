"""The fake Letta's tool calls, as 0.16.8 streams them (reference/letta/README.md §20, captures
`agents-stream-tokens-two-tools` and `conversations-stream-tokens-two-tools`).

An agent given tools (`FakeLetta.set_tools`) calls each in turn before it replies: a `tool_call_message` (with
`stream_tokens`, two fragments sharing id, otid and tool_call_id, the name only in the first), then its
`tool_return_message`: `success` with the argument in upper case, or `error` with the text Letta gives a tool
that raised. Every message is a copy of the capture's, only ids, texts and dates replaced.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import letta_shapes as S
from .letta_shapes import new_id, otid_from_id, wire_date

_EVENTS = [e["data"] for e in S.capture("0.16.8", "agents-stream-tokens-two-tools")["response"]["events"]]
_CALL = next(e for e in _EVENTS if isinstance(e, dict) and e.get("message_type") == "tool_call_message")
_RETURN = next(e for e in _EVENTS if isinstance(e, dict) and e.get("message_type") == "tool_return_message")
RAISED = "Error executing function {name}: ValueError: {name} failed"

Tool = tuple[str, bool]  # (name, whether it succeeds)


def tool_messages(tools: list[Tool], step_id: str, run_id: str | None) -> list[dict[str, Any]]:
    """The whole tool_call_message and tool_return_message of each tool, in order (one step each)."""
    out: list[dict[str, Any]] = []
    for name, ok in tools:
        call_id = f"call_{new_id('x')[2:].replace('-', '')[:24]}"
        arguments = json.dumps({"message": "ok"})
        mid = new_id("message")
        call = copy.deepcopy(_CALL)
        call.update(id=mid, otid=otid_from_id(mid, 0), date=wire_date(), step_id=step_id, run_id=run_id)
        call["tool_call"] = {"name": name, "arguments": arguments, "tool_call_id": call_id}
        call["tool_calls"] = [dict(call["tool_call"])]  # a whole message lists them (agents-send-tool-all-types)
        out.append(call)
        said = "OK" if ok else RAISED.format(name=name)
        status = "success" if ok else "error"
        rid = new_id("message")
        back = copy.deepcopy(_RETURN)
        back.update(id=rid, otid=otid_from_id(rid, 0), date=wire_date(), name=name, step_id=step_id, run_id=run_id,
                    tool_return=said, status=status, tool_call_id=call_id)
        back["tool_returns"] = [{**back["tool_returns"][0], "tool_return": said, "status": status,
                                 "tool_call_id": call_id}]
        out.append(back)
    return out


def call_fragments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call token-streamed: its arguments in two fragments, the name only in the first; a fragment's
    `tool_calls` is the fragment itself, not a list."""
    call = message["tool_call"]
    half = len(call["arguments"]) // 2
    first = {**call, "arguments": call["arguments"][:half]}
    rest = {"arguments": call["arguments"][half:], "tool_call_id": call["tool_call_id"]}
    return [{**message, "tool_call": first, "tool_calls": first}, {**message, "tool_call": rest, "tool_calls": rest}]
