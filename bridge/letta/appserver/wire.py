"""Pydantic models of the frames a Letta App Server sends over its WebSocket (reference/letta/app-server/README.md).

They are a union on `type`, and a `stream_delta`'s `delta` a union on `message_type`; a type the bridge
does not know becomes `UnknownFrame` / `UnknownDelta` instead of an error, because every turn brings status
frames the bridge ignores and newer servers add more (0.34.12 added capabilities the 0.32.18 captures lack).
The frames the bridge sends are outgoing.py's.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from bridge.letta.appserver.deltas import (
    ApprovalRequestDelta,
    AssistantDelta,
    ClientToolStartDelta,
    Delta,
    ErrorDelta,
    LoopErrorDelta,
    ReasoningDelta,
    StopReasonDelta,
    ToolCall,
    ToolReturnDelta,
    UnknownDelta,
    UserDelta,
)

log = logging.getLogger(__name__)

__all__ = [
    "ApprovalRequestDelta",
    "AssistantDelta",
    "ClientToolStartDelta",
    "Delta",
    "ErrorDelta",
    "LoopErrorDelta",
    "ReasoningDelta",
    "StopReasonDelta",
    "ToolCall",
    "ToolReturnDelta",
    "UnknownDelta",
    "UserDelta",
]

PROTOCOL_VERSION = 1  # the protocol_version both 0.32.18 (captured) and 0.34.12 (run here) answer


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Runtime(_Wire):
    """Where a turn runs. The conversation decides the agent (README §4): always send a consistent pair."""

    agent_id: str
    conversation_id: str


# ---------------------------------------------------------------- shared shapes


class Agent(_Wire):
    """A subset of Letta's AgentState; names are not unique, ids are."""

    id: str
    name: str
    description: str | None = None
    model: str | None = None
    tags: list[str] = []
    last_run_completion: str | None = None


class Conversation(_Wire):
    """One thread of an agent (`local-conv-<N>`); the bridge keeps its Slack thread key in `summary`."""

    id: str
    agent_id: str
    summary: str | None = None
    archived: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_message_at: str | None = None


# ---------------------------------------------------------------- frames


class _Frame(_Wire):
    request_id: str | None = None
    runtime: Runtime | None = None


class Answer(_Frame):
    success: bool | None = None
    error: str | None = None


class AppServerInfoResponse(Answer):
    type: Literal["app_server_info_response"] = "app_server_info_response"
    backend: str | None = None
    letta_code_version: str | None = None
    protocol_version: int | None = None
    capabilities: dict[str, Any] = {}


class AgentListResponse(Answer):
    type: Literal["agent_list_response"] = "agent_list_response"
    agents: list[Agent] = []


class AgentRetrieveResponse(Answer):
    """An unknown id: success false, agent null, error "Agent … not found" (README §3)."""

    type: Literal["agent_retrieve_response"] = "agent_retrieve_response"
    agent: Agent | None = None


class ConversationResponse(Answer):
    """conversation_create / _update / _retrieve answers."""

    type: Literal["conversation_create_response", "conversation_update_response", "conversation_retrieve_response"]
    conversation: Conversation | None = None


class ConversationListResponse(Answer):
    type: Literal["conversation_list_response"] = "conversation_list_response"
    conversations: list[Conversation] = []


class MessagesListResponse(Answer):
    type: Literal["conversation_messages_list_response"] = "conversation_messages_list_response"
    messages: list[Delta] = []
    next_before: str | None = None
    has_more: bool | None = None


class RuntimeStartResponse(Answer):
    type: Literal["runtime_start_response"] = "runtime_start_response"


class InputAccepted(Answer):
    """`disposition` is "started" or "queued" for a message, absent for an approval answer."""

    type: Literal["input_accepted"] = "input_accepted"
    accepted: bool = False
    disposition: str | None = None


class AbortMessageResponse(Answer):
    type: Literal["abort_message_response"] = "abort_message_response"
    aborted: bool = False


class RemoveQueueItemResponse(Answer):
    """`success: false` when no such item waits any more (it ran, or was removed). No `runtime` (0.34.12)."""

    type: Literal["remove_queue_item_response"] = "remove_queue_item_response"
    item_id: str | None = None


class QueueItem(_Wire):
    id: str
    client_message_id: str | None = None
    paused: bool | None = None  # set by an abort: it waits for `resume_queue` or the next input


class QueueRemoval(_Wire):
    client_message_id: str | None = None
    disposition: str | None = None  # "dequeued" (it starts now) or "cancelled" (taken out)


class UpdateQueue(_Frame):
    """The conversation's queue after a change, and what just left it (README §6)."""

    type: Literal["update_queue"] = "update_queue"
    queue: list[QueueItem] = []
    removed: list[QueueRemoval] = []


class StreamDelta(_Frame):
    type: Literal["stream_delta"] = "stream_delta"
    delta: Delta = Field(default_factory=UnknownDelta)
    event_seq: int | None = None


class TurnFinished(_Frame):
    """The end of a turn. `turn_id` is `batch-direct-<uuid>` / `batch-<n>` on 0.32.18, `turn-<uuid>` on 0.34.12."""

    type: Literal["turn_finished"] = "turn_finished"
    turn_id: str | None = None
    stop_reason: str | None = None
    run_id: str | None = None
    error: str | None = None


class LoopStatus(_Wire):
    status: str | None = None
    active_run_ids: list[str] = []
    client_message_ids_by_run_id: dict[str, list[str]] = {}


class UpdateLoopStatus(_Frame):
    type: Literal["update_loop_status"] = "update_loop_status"
    loop_status: LoopStatus = Field(default_factory=LoopStatus)


class PermissionRequest(_Wire):
    subtype: str | None = None
    tool_name: str | None = None
    input: dict[str, Any] | None = None
    tool_call_id: str | None = None


class ControlRequest(_Frame):
    """The server asks: `request_id` is the server's ("perm-<tool_call_id>"), answered by an approval_response."""

    type: Literal["control_request"] = "control_request"
    request: PermissionRequest = Field(default_factory=PermissionRequest)


class ExternalToolCallRequest(_Frame):
    type: Literal["external_tool_call_request"] = "external_tool_call_request"
    tool_name: str | None = None


class UnknownFrame(_Frame):
    type: str | None = None


_FRAMES: dict[str, str] = {
    "app_server_info_response": "info",
    "agent_list_response": "agents",
    "agent_retrieve_response": "agent",
    "conversation_create_response": "conversation",
    "conversation_update_response": "conversation",
    "conversation_retrieve_response": "conversation",
    "conversation_list_response": "conversations",
    "conversation_messages_list_response": "messages",
    "runtime_start_response": "runtime_start",
    "input_accepted": "input_accepted",
    "abort_message_response": "abort",
    "remove_queue_item_response": "remove_queue_item",
    "update_queue": "queue",
    "stream_delta": "delta",
    "turn_finished": "turn_finished",
    "update_loop_status": "loop_status",
    "control_request": "control_request",
    "external_tool_call_request": "external_tool",
}


def _frame_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _FRAMES.get(str(kind), "unknown")


Frame = Annotated[
    Annotated[AppServerInfoResponse, Tag("info")]
    | Annotated[AgentListResponse, Tag("agents")]
    | Annotated[AgentRetrieveResponse, Tag("agent")]
    | Annotated[ConversationResponse, Tag("conversation")]
    | Annotated[ConversationListResponse, Tag("conversations")]
    | Annotated[MessagesListResponse, Tag("messages")]
    | Annotated[RuntimeStartResponse, Tag("runtime_start")]
    | Annotated[InputAccepted, Tag("input_accepted")]
    | Annotated[AbortMessageResponse, Tag("abort")]
    | Annotated[RemoveQueueItemResponse, Tag("remove_queue_item")]
    | Annotated[UpdateQueue, Tag("queue")]
    | Annotated[StreamDelta, Tag("delta")]
    | Annotated[TurnFinished, Tag("turn_finished")]
    | Annotated[UpdateLoopStatus, Tag("loop_status")]
    | Annotated[ControlRequest, Tag("control_request")]
    | Annotated[ExternalToolCallRequest, Tag("external_tool")]
    | Annotated[UnknownFrame, Tag("unknown")],
    Discriminator(_frame_tag),
]

FRAME: TypeAdapter[Frame] = TypeAdapter(Frame)


def parse_frame(text: str) -> Frame | None:
    """One received text frame; None for what is not a JSON object, or a known frame of an unreadable shape
    (logged: the socket goes on, as the server's own reader does with bad frames)."""
    try:
        data = json.loads(text)
    except ValueError:
        log.warning("app server: a frame that is not JSON (%d chars)", len(text))
        return None
    if not isinstance(data, dict):
        log.warning("app server: a frame that is not an object")
        return None
    try:
        return FRAME.validate_python(data)
    except ValidationError as exc:
        # Where and why only: pydantic's `input` would copy what people or agents wrote into the log.
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        log.warning("app server: unreadable %s frame: %s: %s", data.get("type"), where, first["msg"])
        return None
