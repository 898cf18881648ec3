"""The fake App Server's tool calls, replayed from the captures of README §7 with ids, names and runs swapped.

A tool an agent is given (`FakeAppServer.set_tools`: (name, read_only)) is called before the agent's reply, unless
the input allowed no tools (`client_tool_allowlist: []`, capture ws-turn-client-tool-allowlist-empty: the model is
offered none). In `standard` mode a read-only one runs at once (capture ws-tool-call-standard-mode: approval
request, requires_approval, classification, client_tool_start, the streamed and the final tool_return,
client_tool_end); any other asks (capture ws-approval-deny: a control_request, then on a deny client_tool_end and
tool_return with status error and the deny's message). In `unrestricted` mode every tool runs at once.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from tests.reference import APP_SERVER, load

if TYPE_CHECKING:
    from tests.fakes.appserver import Conv, FakeAppServer, Turn

Json = dict[str, Any]
Tool = tuple[str, bool]  # (name, read-only)


def _turn_frames(name: str) -> list[Json]:
    """The capture's frames of its tool call: from the approval request to the last tool_return."""
    frames = [f["json"] for f in load(APP_SERVER / name)["frames"] if f["dir"] == "received"]
    kinds = [(f.get("type"), (f.get("delta") or {}).get("message_type")) for f in frames]
    start = kinds.index(("stream_delta", "approval_request_message"))
    end = max(i for i, k in enumerate(kinds) if k == ("stream_delta", "tool_return_message"))
    keep = ("approval_request_message", "stop_reason", "approval_classification_end", "client_tool_start",
            "tool_return_message", "client_tool_end")
    return [f for f in frames[start : end + 1] if f.get("type") == "control_request"
            or (f.get("type") == "stream_delta" and f["delta"].get("message_type") in keep)]


_ALLOWED = _turn_frames("ws-tool-call-standard-mode.json")
_ASKED = _turn_frames("ws-approval-deny.json")


def _swap(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _swap(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, names) for v in value]
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(old, new)
    return value


def _captured(frames: list[Json]) -> dict[str, str]:
    """The capture's own call id, tool name, run, agent and conversation, to be swapped for the turn's."""
    request = next(f["delta"] for f in frames if f.get("delta", {}).get("message_type") == "approval_request_message")
    return {"call": request["tool_call"]["tool_call_id"], "tool": request["tool_call"]["name"],
            "run": request["run_id"], "agent": request["agent_id"], "conversation": request["conversation_id"]}


async def play(fake: FakeAppServer, conv: Conv, turn: Turn, runtime: Json, tools: list[Tool], mode: str) -> None:
    for index, (name, read_only) in enumerate(tools):
        asks = mode == "strict" or (mode == "standard" and not read_only)
        frames = _ASKED if asks else _ALLOWED
        was = _captured(frames)
        call_id = f"call_fake{next(fake._ids)}"
        names = {was["call"]: call_id, was["run"]: turn.run_id, was["agent"]: turn.agent_id,
                 was["conversation"]: conv.id}
        for position, captured in enumerate(frames):
            frame = _swap(copy.deepcopy(captured), names)
            _rename(frame, was["tool"], name)
            if frame.get("type") == "control_request":
                decision = await _asked(fake, conv, frame, runtime)
                if decision.get("behavior") != "deny":
                    continue  # not captured: the bridge only ever denies
                message = str(decision.get("message") or "")
                for later in frames[position + 1 :]:
                    later = _swap(copy.deepcopy(later), names)
                    if later["delta"].get("message_type") == "tool_return_message":
                        later["delta"]["tool_return"] = message
                        for one in later["delta"].get("tool_returns") or []:
                            one["tool_return"] = message
                    await fake._emit(conv, later, runtime)
                break
            await fake._emit(conv, frame, runtime)
            await asyncio.sleep(0.005 * (index + 1))


def _rename(frame: Json, captured: str, name: str) -> None:
    delta = frame.get("delta") or {}
    if isinstance(delta.get("tool_call"), dict):
        delta["tool_call"]["name"] = name
    if "tool_name" in delta:
        delta["tool_name"] = name
    if frame.get("type") == "control_request":
        frame["request"]["tool_name"] = name


async def _asked(fake: FakeAppServer, conv: Conv, frame: Json, runtime: Json) -> Json:
    """Send the control_request to the conversation's sockets and wait for the approval_response."""
    answer: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
    fake.approvals[frame["request_id"]] = answer
    await fake._emit(conv, frame, runtime)
    try:
        return await asyncio.wait_for(answer, 10)
    finally:
        fake.approvals.pop(frame["request_id"], None)
