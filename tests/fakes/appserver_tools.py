"""The fake App Server's tool calls, replayed from the captures of README §7 with ids, names and runs swapped.

A tool an agent is given (`FakeAppServer.set_tools`: (name, read_only)) is called before the agent's reply, unless
the input allowed no tools (`client_tool_allowlist: []`, capture ws-turn-client-tool-allowlist-empty: the model is
offered none). In `standard` mode a read-only one runs at once (capture ws-tool-call-standard-mode: approval
request, requires_approval, classification, client_tool_start, the streamed and the final tool_return,
client_tool_end); any other asks with a control_request and waits for the client's `approval_response`, as long as
it takes: an allow runs the tool (capture ws-approval-allow: client_tool_start, the streamed tool_return,
client_tool_end, the final tool_return), a deny does not (capture ws-approval-deny: client_tool_end and tool_return
with status error and the deny's message). The model's next step then runs as a new run of the same input (both
captures: `local-run-10` asked, `local-run-11` answered, both listed under the input's client_message_id). An
`abort_message`, or the closing of the socket that sent the input, ends the wait: the turn is cancelled (capture
ws-approval-pending-queue-abort-resume). In `unrestricted` mode every tool runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.reference import APP_SERVER, load

if TYPE_CHECKING:
    from tests.fakes.appserver import Conv, FakeAppServer, Turn

Json = dict[str, Any]
Tool = tuple[str, bool]  # (name, read-only)
NOT_PENDING = "Approval request is no longer pending"  # capture ws-approval-pending-queue-abort-resume


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


def _split(frames: list[Json]) -> tuple[list[Json], list[Json]]:
    """Up to and including the control_request; what follows the client's answer."""
    at = next(i for i, f in enumerate(frames) if f.get("type") == "control_request")
    return frames[: at + 1], frames[at + 1 :]


def _history(name: str) -> list[Json]:
    listed = next(f["json"] for f in load(APP_SERVER / name)["frames"]
                  if (f.get("json") or {}).get("type") == "conversation_messages_list_response")
    kinds = ("approval_request_message", "tool_return_message")
    return [m for m in listed["messages"] if m["message_type"] in kinds]


_HISTORY = _history("ws-approval-allow.json")
RAN = str(_HISTORY[1]["tool_return"])  # what the captured tool printed
_ALLOWED = _turn_frames("ws-tool-call-standard-mode.json")
_ASKED, _AFTER_ALLOW = _split(_turn_frames("ws-approval-allow.json"))
_AFTER_DENY = _split(_turn_frames("ws-approval-deny.json"))[1]


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
    deltas = [f["delta"] for f in frames if f.get("type") == "stream_delta"]
    delta = next((d for d in deltas if d.get("tool_call")), None) or next(d for d in deltas if "tool_call_id" in d)
    call = delta.get("tool_call") or {}
    out = {"call": str(call.get("tool_call_id") or delta["tool_call_id"]), "run": str(delta["run_id"])}
    if call:
        out.update(tool=str(call["name"]), agent=str(delta["agent_id"]), conversation=str(delta["conversation_id"]))
    return out


async def _replay(
    fake: FakeAppServer, conv: Conv, frames: list[Json], runtime: Json, names: dict[str, str], tool: str,
    message: str | None = None,
) -> Json | None:
    """The frames with the turn's ids, its tool's name (and a deny's message); the control_request last, if any,
    is returned instead of sent."""
    was = _captured(frames)
    swaps = {was["call"]: names["call"], was["run"]: names["run"]}
    if "agent" in was:
        swaps.update({was["agent"]: names["agent"], was["conversation"]: names["conversation"]})
    for captured in frames:
        frame = _swap(copy.deepcopy(captured), swaps)
        _rename(frame, tool)
        if frame.get("type") == "control_request":
            return frame
        delta = frame.get("delta") or {}
        if message is not None and delta.get("message_type") == "tool_return_message":
            delta["tool_return"] = message
            for one in delta.get("tool_returns") or []:
                one["tool_return"] = message
        await fake._emit(conv, frame, runtime)
        await asyncio.sleep(0.005)
    return None


async def play(fake: FakeAppServer, conv: Conv, turn: Turn, runtime: Json, tools: list[Tool], mode: str) -> str:
    """The turn's tool calls: "ran" (none asked), "asked" (people decided on one at least), or "cancelled" (the
    turn was aborted, or its socket closed, while a call waited)."""
    outcome = "ran"
    for name, read_only in tools:
        asks = mode == "strict" or (mode == "standard" and not read_only)
        names = {"call": f"call_fake{next(fake._ids)}", "run": turn.run_id, "agent": turn.agent_id,
                 "conversation": conv.id}
        if not asks:
            await _replay(fake, conv, _ALLOWED, runtime, names, name)
            _remember(fake, conv, names["call"], name, "success", RAN)
            continue
        request = await _replay(fake, conv, _ASKED, runtime, names, name)
        assert request is not None
        decision = await _asked(fake, conv, turn, request, runtime)
        if decision is None:
            return "cancelled"
        outcome = "asked"
        if decision.get("behavior") == "deny":
            message = str(decision.get("message") or "")
            await _replay(fake, conv, _AFTER_DENY, runtime, names, name, message)
            _remember(fake, conv, names["call"], name, "error", message)
        else:
            await _replay(fake, conv, _AFTER_ALLOW, runtime, names, name)
            _remember(fake, conv, names["call"], name, "success", RAN)
    return outcome


def _remember(fake: FakeAppServer, conv: Conv, call_id: str, name: str, status: str, text: str) -> None:
    """History keeps the call and its return (capture ws-approval-allow's history: an approval_request_message
    whose id is `<message id>:tool:<call>:request`, then a tool_return_message)."""
    arguments = _HISTORY[0]["tool_call"]["arguments"]
    request = {**copy.deepcopy(_HISTORY[0]), "id": f"ui-msg-{next(fake._ids)}:tool:{call_id}:request",
               "tool_call": {"tool_call_id": call_id, "name": name, "arguments": arguments}}
    returned = {**copy.deepcopy(_HISTORY[1]), "id": f"ui-msg-{next(fake._ids)}", "tool_call_id": call_id,
                "status": status, "tool_return": text}
    for message in (request, returned):
        message.update(date=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        message.update(agent_id=conv.agent_id, conversation_id=conv.id)
        conv.messages.append(message)


def _rename(frame: Json, name: str) -> None:
    delta = frame.get("delta") or {}
    if isinstance(delta.get("tool_call"), dict):
        delta["tool_call"]["name"] = name
    if "tool_name" in delta:
        delta["tool_name"] = name
    if frame.get("type") == "control_request":
        frame["request"]["tool_name"] = name


async def _asked(fake: FakeAppServer, conv: Conv, turn: Turn, frame: Json, runtime: Json) -> Json | None:
    """Send the control_request to the conversation's sockets and wait for the approval_response; None when the
    turn was aborted or cut first."""
    answer: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
    fake.approvals[frame["request_id"]] = answer
    await fake._emit(conv, frame, runtime)
    ended = asyncio.ensure_future(turn.aborted.wait())
    try:
        await asyncio.wait([answer, ended], return_when=asyncio.FIRST_COMPLETED)
        return answer.result() if answer.done() else None
    finally:
        ended.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ended
        fake.approvals.pop(frame["request_id"], None)
