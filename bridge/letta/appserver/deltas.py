"""The `delta` of a `stream_delta` frame, and a history message: a union on `message_type` whose unknown types
become `UnknownDelta` (the server sends many the bridge has no use for: usage, retries, status, tool progress).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

from bridge.letta.models import TextPart, content_text


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ToolCall(_Wire):
    tool_call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class _Delta(_Wire):
    id: str | None = None
    date: str | None = None
    run_id: str | None = None
    seq_id: int | None = None


class AssistantDelta(_Delta):
    message_type: Literal["assistant_message"] = "assistant_message"
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class ReasoningDelta(_Delta):
    """Not produced by the captures' fake model; shaped as Letta's reasoning_message."""

    message_type: Literal["reasoning_message"] = "reasoning_message"
    reasoning: str | None = None


class UserDelta(_Delta):
    """A user message: the echo of a queued input when it starts, or a history entry (`otid` = client_message_id)."""

    message_type: Literal["user_message"] = "user_message"
    content: str | list[TextPart] | None = None
    otid: str | None = None

    @property
    def text(self) -> str:
        """The sender's own text: the last part (the first message of a conversation has system reminders
        before it, README §11)."""
        if isinstance(self.content, list):
            texts = [part.text or "" for part in self.content if part.type == "text"]
            return texts[-1] if texts else ""
        return self.content or ""


class StopReasonDelta(_Delta):
    """Intermediate: `llm_api_error` or `requires_approval` here do not end the turn; `turn_finished` does."""

    message_type: Literal["stop_reason"] = "stop_reason"
    stop_reason: str


class ErrorDelta(_Delta):
    """`retryable: false` (an agent whose model no provider serves): the same turn would fail again."""

    message_type: Literal["error_message"] = "error_message"
    message: str | None = None
    detail: str | None = None
    error_type: str | None = None
    retryable: bool | None = None


class LoopErrorDelta(_Delta):
    """Can arrive after `turn_finished`, and alone for an `input` the server refused (README §2, §5)."""

    message_type: Literal["loop_error"] = "loop_error"
    message: str | None = None
    stop_reason: str | None = None
    is_terminal: bool | None = None


class ApprovalRequestDelta(_Delta):
    message_type: Literal["approval_request_message"] = "approval_request_message"
    tool_call: ToolCall | None = None


class ToolReturnDelta(_Delta):
    message_type: Literal["tool_return_message"] = "tool_return_message"
    tool_call_id: str | None = None
    status: str | None = None
    tool_return: str | None = None


class ClientToolStartDelta(_Delta):
    message_type: Literal["client_tool_start"] = "client_tool_start"
    tool_call_id: str | None = None
    tool_name: str | None = None


class UnknownDelta(_Wire):
    message_type: str | None = None


_DELTAS: dict[str, type[BaseModel]] = {
    "assistant_message": AssistantDelta,
    "reasoning_message": ReasoningDelta,
    "user_message": UserDelta,
    "stop_reason": StopReasonDelta,
    "error_message": ErrorDelta,
    "loop_error": LoopErrorDelta,
    "approval_request_message": ApprovalRequestDelta,
    "tool_return_message": ToolReturnDelta,
    "client_tool_start": ClientToolStartDelta,
}


def _delta_tag(value: Any) -> str:
    kind = value.get("message_type") if isinstance(value, dict) else getattr(value, "message_type", None)
    return str(kind) if kind in _DELTAS else "unknown"


Delta = Annotated[
    Annotated[AssistantDelta, Tag("assistant_message")]
    | Annotated[ReasoningDelta, Tag("reasoning_message")]
    | Annotated[UserDelta, Tag("user_message")]
    | Annotated[StopReasonDelta, Tag("stop_reason")]
    | Annotated[ErrorDelta, Tag("error_message")]
    | Annotated[LoopErrorDelta, Tag("loop_error")]
    | Annotated[ApprovalRequestDelta, Tag("approval_request_message")]
    | Annotated[ToolReturnDelta, Tag("tool_return_message")]
    | Annotated[ClientToolStartDelta, Tag("client_tool_start")]
    | Annotated[UnknownDelta, Tag("unknown")],
    Discriminator(_delta_tag),
]
