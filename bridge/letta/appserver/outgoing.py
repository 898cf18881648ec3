"""Pydantic models of the frames the bridge sends to a Letta App Server (reference/letta/app-server/README.md).

Each is dumped without its unset fields (`client_tool_allowlist: []` is kept: it means "no tools", which is not the
same as leaving it out). What the server sends back is wire.py's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bridge.letta.appserver.wire import Runtime


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Sent(_Wire):
    type: str
    request_id: str | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AppServerInfo(Sent):
    type: Literal["app_server_info"] = "app_server_info"


class AgentList(Sent):
    type: Literal["agent_list"] = "agent_list"
    query: dict[str, Any] | None = None


class AgentRetrieve(Sent):
    type: Literal["agent_retrieve"] = "agent_retrieve"
    agent_id: str


class ConversationCreate(Sent):
    type: Literal["conversation_create"] = "conversation_create"
    body: dict[str, Any]


class ConversationUpdate(Sent):
    type: Literal["conversation_update"] = "conversation_update"
    conversation_id: str
    body: dict[str, Any]


class ConversationList(Sent):
    type: Literal["conversation_list"] = "conversation_list"
    query: dict[str, Any] | None = None


class ConversationMessagesList(Sent):
    type: Literal["conversation_messages_list"] = "conversation_messages_list"
    conversation_id: str
    query: dict[str, Any] | None = None


class RuntimeStart(Sent):
    """Attaches this socket to a conversation and sets its permission `mode` (README §5, §7)."""

    type: Literal["runtime_start"] = "runtime_start"
    agent_id: str
    conversation_id: str
    mode: str | None = None
    client_info: dict[str, Any] | None = None


class OutgoingMessage(_Wire):
    role: Literal["user"] = "user"
    content: str | list[dict[str, Any]]  # text, or content parts (text and images, README §18)
    client_message_id: str  # comes back as the user message's `otid` in history


class CreateMessage(_Wire):
    kind: Literal["create_message"] = "create_message"
    messages: list[OutgoingMessage]
    client_tool_allowlist: list[str] | None = None
    # An image the server cannot decode fails the whole turn, text and all, unless dropped (README §18).
    image_failure_mode: Literal["strict", "drop"] | None = None


class ApprovalDecision(_Wire):
    behavior: Literal["allow", "deny"]
    message: str | None = None


class ApprovalResponse(_Wire):
    kind: Literal["approval_response"] = "approval_response"
    request_id: str  # the control_request's id ("perm-<tool_call_id>")
    decision: ApprovalDecision


class Input(Sent):
    type: Literal["input"] = "input"
    runtime: Runtime
    payload: CreateMessage | ApprovalResponse


class AbortMessage(Sent):
    """Without `run_id` it stops whatever turn the conversation runs; with one, only that run (withdraw.py)."""

    type: Literal["abort_message"] = "abort_message"
    runtime: Runtime
    run_id: str | None = None


class RemoveQueueItem(Sent):
    """Takes a queued input out of its conversation's queue before it runs (observed 0.34.12)."""

    type: Literal["remove_queue_item"] = "remove_queue_item"
    runtime: Runtime
    item_id: str


class ExternalToolCallResponse(Sent):
    type: Literal["external_tool_call_response"] = "external_tool_call_response"
    error: str
