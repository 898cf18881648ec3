"""Pydantic models of the Letta JSON the bridge reads, tolerant of what it does not know.

Messages are a union discriminated on `message_type`; a type this bridge has never seen becomes
`UnknownMessage` instead of a validation error, because servers add types between releases.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError, field_validator

from bridge.letta.errors import BACKGROUND_REFUSED, Kind, LettaError

log = logging.getLogger(__name__)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TextPart(_Wire):
    type: str = "text"
    text: str | None = None


Content = str | list[TextPart] | None


def content_text(content: Content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text or "" for part in content if part.type == "text")


class MessageBase(_Wire):
    id: str | None = None
    date: str | None = None
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    step_id: str | None = None
    run_id: str | None = None
    is_err: bool | None = None
    seq_id: int | None = None


class AssistantMessage(MessageBase):
    message_type: Literal["assistant_message"] = "assistant_message"
    content: Content = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class UserMessage(MessageBase):
    message_type: Literal["user_message"] = "user_message"
    content: Content = None


class SystemMessage(MessageBase):
    message_type: Literal["system_message"] = "system_message"
    content: Content = None


class ReasoningMessage(MessageBase):
    message_type: Literal["reasoning_message"] = "reasoning_message"
    reasoning: str | None = None


class ToolCall(_Wire):
    name: str | None = None
    arguments: str | None = None
    tool_call_id: str | None = None


class _CallsMessage(MessageBase):
    """0.16.8 gives a model's parallel calls in one message: `tool_call` is only the first, `tool_calls` lists
    them all (parallel-tools-*); token-streamed, each fragment's `tool_calls` is one delta object, not a list.
    Older servers send `tool_call` alone."""

    tool_call: ToolCall | None = None
    tool_calls: list[ToolCall] | ToolCall | None = None

    @property
    def calls(self) -> list[ToolCall]:
        if isinstance(self.tool_calls, ToolCall):
            return [self.tool_calls]
        return self.tool_calls or ([self.tool_call] if self.tool_call is not None else [])


class ToolCallMessage(_CallsMessage):
    message_type: Literal["tool_call_message"] = "tool_call_message"


class ApprovalRequestMessage(_CallsMessage):
    """0.16.8: the agent asks whether its tool calls may run; the turn then stops with `requires_approval`
    (reference/letta/README.md section 17). Its `otid` equals its `id`. With stream_tokens it arrives in fragments
    of one message (approval-stream-tokens.json)."""

    message_type: Literal["approval_request_message"] = "approval_request_message"


class ToolReturn(_Wire):
    """One call's result in a `tool_return_message` that answers several calls at once."""

    tool_call_id: str | None = None
    status: str | None = None
    tool_return: str | None = None

    @field_validator("tool_return", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        """0.16.8 gives a result as content parts (text, image) too: its text is what the bridge shows."""
        if isinstance(value, list):
            parts = [p for p in value if isinstance(p, dict)]
            return " ".join(
                str(p.get("text") or "") if p.get("type") == "text" else "[image]"
                for p in parts
                if p.get("type") in ("text", "image")
            ).strip()
        return value


class ToolReturnMessage(MessageBase):
    message_type: Literal["tool_return_message"] = "tool_return_message"
    tool_return: str | None = None
    status: str | None = None
    tool_call_id: str | None = None
    # 0.16.8 answers a model's parallel tool calls in ONE message: its top-level fields are one call's (not
    # always the first's), the list has every call's (reference/letta/0.16.8/parallel-tools-*).
    tool_returns: list[ToolReturn] | None = None

    def returns(self) -> list[ToolReturn]:
        """Every call this message answers."""
        if self.tool_returns:
            return self.tool_returns
        return [ToolReturn(tool_call_id=self.tool_call_id, status=self.status, tool_return=self.tool_return)]


class StopReason(_Wire):
    message_type: Literal["stop_reason"] = "stop_reason"
    stop_reason: str


class UsageStatistics(_Wire):
    message_type: Literal["usage_statistics"] = "usage_statistics"
    step_count: int | None = None
    total_tokens: int | None = None


class ErrorMessage(MessageBase):
    """0.16.x stream error event."""

    message_type: Literal["error_message"] = "error_message"
    error_type: str | None = None
    message: str | None = None
    detail: str | None = None


class Ping(MessageBase):
    message_type: Literal["ping"] = "ping"


class UnknownMessage(_Wire):
    message_type: str | None = None


_KNOWN: dict[str, type[BaseModel]] = {
    "assistant_message": AssistantMessage,
    "user_message": UserMessage,
    "system_message": SystemMessage,
    "reasoning_message": ReasoningMessage,
    "tool_call_message": ToolCallMessage,
    "tool_return_message": ToolReturnMessage,
    "approval_request_message": ApprovalRequestMessage,
    "stop_reason": StopReason,
    "usage_statistics": UsageStatistics,
    "error_message": ErrorMessage,
    "ping": Ping,
}


def _tag(value: Any) -> str:
    kind = value.get("message_type") if isinstance(value, dict) else getattr(value, "message_type", None)
    if kind in _KNOWN:
        return str(kind)
    log.info("letta: skipping a message of unknown type %r", kind)
    return "unknown"


LettaMessage = Annotated[
    Annotated[AssistantMessage, Tag("assistant_message")]
    | Annotated[UserMessage, Tag("user_message")]
    | Annotated[SystemMessage, Tag("system_message")]
    | Annotated[ReasoningMessage, Tag("reasoning_message")]
    | Annotated[ToolCallMessage, Tag("tool_call_message")]
    | Annotated[ToolReturnMessage, Tag("tool_return_message")]
    | Annotated[ApprovalRequestMessage, Tag("approval_request_message")]
    | Annotated[StopReason, Tag("stop_reason")]
    | Annotated[UsageStatistics, Tag("usage_statistics")]
    | Annotated[ErrorMessage, Tag("error_message")]
    | Annotated[Ping, Tag("ping")]
    | Annotated[UnknownMessage, Tag("unknown")],
    Discriminator(_tag),
]

MESSAGE_LIST: TypeAdapter[list[LettaMessage]] = TypeAdapter(list[LettaMessage])

# Stop reasons whose run Letta ends `failed` or `cancelled` (0.16.8's StopReasonType.run_status), even inside a 200
# answer, and `max_steps`, whose run it calls completed though the agent stopped mid-answer (its steps, 50 a message
# by default, used up: seen on a real 0.16.8 after 50 tool call/return pairs): the words before them are not the whole
# reply. Each with what it means, where the reason alone says little.
OUT_OF_STEPS = "max_steps"
ERROR_STOP_REASONS: dict[str, str] = {
    "error": "",
    "llm_api_error": "",
    "invalid_llm_response": "",
    "invalid_tool_call": "",
    "no_tool_call": "",
    "max_tokens_exceeded": "the model reached its output limit, so the answer is cut short",
    OUT_OF_STEPS: "the agent used every step Letta allows one answer",
    "context_window_overflow_in_system_prompt": "the agent's instructions no longer fit its model's context window",
    "insufficient_credits": "the Letta account has no credits left",
    "cancelled": "the answer was cancelled on the Letta server",
}


def stop_failure(reason: str) -> str | None:
    """Why a run that stopped for `reason` failed, in words; None when it ended normally (or waits for approval)."""
    if reason not in ERROR_STOP_REASONS:
        return None
    return ERROR_STOP_REASONS[reason] or f"stop reason {reason}"


# Stop reasons after which every send fails alike until an operator acts: out of credits is the HTTP 402's condition
# (QUOTA, which stops the turn before the next agent), instructions too long for the model fail each send (lasting).
QUOTA_STOP_REASONS = frozenset({"insufficient_credits"})
LASTING_STOP_REASONS = frozenset({"context_window_overflow_in_system_prompt"})


def failed_run(detail: str, reason: str | None, base_url: str, request_id: str = "") -> LettaError:
    """A run Letta began and ended failed (its stop reason `reason`, if it gave one) as the bridge's failure: its
    first steps may be stored, so it is said as started, and as lasting where asking again cannot help."""
    kind = Kind.QUOTA if reason in QUOTA_STOP_REASONS else Kind.RUN_FAILED
    error = LettaError(kind, detail, base_url=base_url, request_id=request_id)
    error.started = True
    error.lasting = reason in LASTING_STOP_REASONS
    error.out_of_steps = reason == OUT_OF_STEPS
    return error


class LettaResponse(_Wire):
    messages: list[LettaMessage] = []
    stop_reason: StopReason | None = None
    usage: UsageStatistics | None = None


class Health(_Wire):
    version: str
    status: str | None = None


class Agent(_Wire):
    id: str
    name: str
    description: str | None = None


class Group(_Wire):
    id: str
    manager_type: str = "round_robin"
    agent_ids: list[str] = []
    description: str | None = None
    manager_agent_id: str | None = None
    termination_token: str | None = None
    max_turns: int | None = None


class Conversation(_Wire):
    """One thread of an agent (Letta 0.16.8 and Cloud): its own messages, the agent's memory."""

    id: str
    agent_id: str
    summary: str | None = None
    in_context_message_ids: list[str] = []
    last_message_at: str | None = None
    created_at: str | None = None


GROUP_LIST: TypeAdapter[list[Group]] = TypeAdapter(list[Group])
CONVERSATION_LIST: TypeAdapter[list[Conversation]] = TypeAdapter(list[Conversation])
AGENT_LIST: TypeAdapter[list[Agent]] = TypeAdapter(list[Agent])


class LLMError(_Wire):
    type: str | None = None
    message: str | None = None
    detail: str | None = None


class ErrorBody(_Wire):
    """Error bodies come as `{"detail": str | list | dict}` (FastAPI) or `{"error": {...}}` (0.16.x LLM)."""

    detail: str | list[Any] | dict[str, Any] | None = None
    error: LLMError | str | None = None
    code: str | None = None
    run_id: str | None = None  # a 409: the run that holds the conversation
    reasons: list[Any] | None = None  # Letta Cloud's why of a 402 / 429 ("exceeded-quota", "not-enough-credits")

    def from_agent_loop(self, status: int) -> bool:
        """Letta's own handlers' answer to a send whose agent loop had begun: its model rate-limited (429
        `llm_rate_limit`) or failing (`llm_*`), or its provider or database unavailable (a 503 `detail`). Each step
        the loop finished is stored, so sending again could be a second turn. A proxy's or gateway's 429 or 503,
        answered before Letta, has neither shape."""
        if isinstance(self.error, LLMError) and (self.error.type or "").startswith("llm_"):
            return True
        return status == 503 and self.detail is not None and BACKGROUND_REFUSED not in str(self.detail)

    def describe(self) -> str:
        said = self._said()
        why = ", ".join(r for r in self.reasons or () if isinstance(r, str) and r not in said)
        return f"{said} ({why})" if said and why else said or why

    def _said(self) -> str:
        if isinstance(self.error, LLMError):
            return self.error.message or self.error.detail or self.error.type or ""
        if isinstance(self.error, str):
            return self.error
        if isinstance(self.detail, str):
            return _validation_words(self.detail) or _ORM_NOT_FOUND.sub(r"\1 not found: \2", self.detail)
        if isinstance(self.detail, dict):
            return str(self.detail.get("message") or self.detail.get("code") or self.detail)
        if isinstance(self.detail, list) and self.detail:
            first = self.detail[0]
            return str(first.get("msg", first)) if isinstance(first, dict) else str(first)
        return ""


# Letta's ORM "not found" (0.11 to 0.16): the id as a list's repr, then the access level and the whole actor's repr
# (user and organization ids, datetimes), which is no words for a thread: cut to "Group not found: group-…".
_ORM_NOT_FOUND = re.compile(r"^(\w+) not found with id='\[?'?([^'\]]*)'?\]?'.*\Z", re.DOTALL)
# Letta 0.16's 422: pydantic's error list as a Python repr in a string `detail` (0.11 sends the list itself).
_REPR_ERROR = re.compile(r"'loc': \((.*?)\), 'msg': (['\"])(.*?)\2(?=, '|\})")
_LOC_PART = re.compile(r"'([^']*)'|(\d+)")


def _validation_words(detail: str) -> str:
    """A 0.16 422's repr as `field: reason` for each error (`media_type: Field required`); "" for any other text."""
    if not detail.startswith("[{'type'"):
        return ""
    said = []
    for loc, _, msg in _REPR_ERROR.findall(detail):
        parts = [a or b for a, b in _LOC_PART.findall(loc)]
        said.append(f"{parts[-1]}: {msg}" if parts else msg)
    return "; ".join(dict.fromkeys(said))


def parse_error(payload: Any) -> ErrorBody:
    try:
        return ErrorBody.model_validate(payload)
    except ValidationError:
        return ErrorBody(detail=str(payload)[:300])


def run_failure(response: LettaResponse) -> str | None:
    """An error reported inside a 200 answer, in its own words, or None."""
    for message in response.messages:
        if isinstance(message, ErrorMessage):
            return message.message or message.detail or message.error_type or "error"
    return stop_failure(response.stop_reason.stop_reason) if response.stop_reason else None


def run_error(response: LettaResponse, base_url: str, request_id: str = "") -> LettaError | None:
    """The failure reported inside a 200 answer (`run_failure`), or None."""
    failed = run_failure(response)
    if not failed:
        return None
    return failed_run(failed, response.stop_reason.stop_reason if response.stop_reason else None, base_url, request_id)
