"""One turn's frames read as the bridge's events: text growing per assistant message, notes, and its end.

Why (reference/letta/app-server/README.md §5, §6, §10):
- A turn's frames carry only its runtime, so which frames are this turn's is decided here. An input answered
  `queued` waits behind another turn of the conversation: its frames start with the `user_message` echo
  whose `otid` is our `client_message_id` (or a loop status mapping one of the running runs to it); the
  frames before it, that turn's `turn_finished` included, belong to the turn ahead.
- Assistant text arrives one model chunk per `stream_delta`; chunks with the same `delta.id` are one message.
- Only `turn_finished` ends a turn. An intermediate `stop_reason: llm_api_error` is followed by the server's
  own retries (about 35 s against a failing model), and a `loop_error` can come after `turn_finished`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.letta.appserver.wire import (
    ApprovalRequestDelta,
    AssistantDelta,
    ClientToolStartDelta,
    ControlRequest,
    ErrorDelta,
    Frame,
    LoopErrorDelta,
    ReasoningDelta,
    StreamDelta,
    ToolReturnDelta,
    TurnFinished,
    UpdateLoopStatus,
    UserDelta,
)
from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import ERROR_STOP_REASONS, OUT_OF_STEPS, failed_run

STUCK = "already has an active run"  # 0.34.12, after a socket closed mid-turn: until the server restarts


@dataclass(frozen=True)
class TextDelta:
    """A piece of an assistant message; `text` is all of that message so far."""

    message_id: str
    piece: str
    text: str


@dataclass(frozen=True)
class Reasoning:
    message_id: str
    text: str


@dataclass(frozen=True)
class ToolCalled:
    tool_call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolStarted:
    """The server began running an allowed tool call (`client_tool_start`, capture ws-tool-call-unrestricted)."""

    tool_call_id: str


@dataclass(frozen=True)
class ToolReturned:
    tool_call_id: str
    status: str
    text: str


@dataclass(frozen=True)
class ToolDenied:
    """The server asked whether a tool may run (`control_request` `can_use_tool`); the bridge said no."""

    tool_call_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class ToolAsked:
    """The server asks whether a tool may run (`control_request` `can_use_tool`, README section 7): answered
    with `AppServerClient.answer` for `request_id` ("perm-<tool_call_id>") while the turn waits."""

    request_id: str
    tool_call_id: str
    name: str
    arguments: str
    # Returns once the turn that asks is over (its socket dropped: the server ended it), so that nobody is left
    # deciding a request that can no longer be used; None where nothing watches.
    ended: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Finished:
    """The turn's end. `replies` are its assistant messages in order (one text per `delta.id`); `error` is set
    when it failed (with `stop_reason` as the server said it, or None when it never said)."""

    stop_reason: str | None
    replies: tuple[str, ...]
    run_id: str | None = None
    error: LettaError | None = None


TurnEvent = TextDelta | Reasoning | ToolCalled | ToolStarted | ToolReturned | ToolDenied | ToolAsked | Finished


class TurnReader:
    """Feeds on the frames of one conversation; says which are this turn's and what they mean."""

    def __init__(self, otid: str, queued: bool, base_url: str = "") -> None:
        self.otid = otid
        self.mine = not queued
        self.base_url = base_url
        self.texts: dict[str, str] = {}
        self.reasoning: dict[str, str] = {}
        self.tools: dict[str, str] = {}  # tool_call_id -> name
        self.other_runs: set[str] = set()
        self.loop_error: str | None = None
        self.lasting = False  # the server said asking again will not help (`retryable: false`)

    def feed(self, frame: Frame) -> list[TurnEvent]:
        if isinstance(frame, UpdateLoopStatus):
            self._runs(frame)
            return []
        if not self.mine:
            if isinstance(frame, StreamDelta) and isinstance(frame.delta, UserDelta) and frame.delta.otid == self.otid:
                self.mine = True
            return []
        if isinstance(frame, TurnFinished):
            return [self.finish(frame.stop_reason, frame.error, frame.run_id)]
        if isinstance(frame, StreamDelta):
            delta = frame.delta
            run_id = getattr(delta, "run_id", None)
            if run_id is not None and run_id in self.other_runs:
                return []
            return self._delta(delta)
        return []

    def finish(self, stop_reason: str | None, error: str | None = None, run_id: str | None = None) -> Finished:
        replies = tuple(text.strip() for text in self.texts.values() if text.strip())
        failure = turn_error(stop_reason, error or self.loop_error, self.base_url, lasting=self.lasting)
        return Finished(stop_reason, replies, run_id, failure)

    def _runs(self, frame: UpdateLoopStatus) -> None:
        runs = frame.loop_status.client_message_ids_by_run_id
        for run_id, ids in runs.items():
            if self.otid in ids:
                if run_id in frame.loop_status.active_run_ids:
                    self.mine = True
            else:
                self.other_runs.add(run_id)

    def _delta(self, delta: object) -> list[TurnEvent]:
        if isinstance(delta, AssistantDelta):
            key = delta.id or "reply"
            self.texts[key] = self.texts.get(key, "") + delta.text
            return [TextDelta(key, delta.text, self.texts[key])]
        if isinstance(delta, ReasoningDelta):
            key = delta.id or "reasoning"
            self.reasoning[key] = self.reasoning.get(key, "") + (delta.reasoning or "")
            return [Reasoning(key, self.reasoning[key])]
        if isinstance(delta, ApprovalRequestDelta) and delta.tool_call is not None:
            call = delta.tool_call
            call_id = call.tool_call_id or ""
            self.tools[call_id] = call.name or ""
            return [ToolCalled(call_id, call.name or "", call.arguments or "")]
        if isinstance(delta, ClientToolStartDelta):
            return [ToolStarted(delta.tool_call_id or "")]
        if isinstance(delta, ToolReturnDelta):
            return [ToolReturned(delta.tool_call_id or "", delta.status or "", delta.tool_return or "")]
        if isinstance(delta, ErrorDelta) and delta.retryable is False:
            self.lasting = True
        if isinstance(delta, LoopErrorDelta) and delta.message:
            self.loop_error = delta.message
        return []


def denial(request: ControlRequest, reason: str) -> ToolDenied:
    return ToolDenied(request.request.tool_call_id or "", request.request.tool_name or "", reason)


def question(request: ControlRequest, ended: Callable[[], Awaitable[None]] | None = None) -> ToolAsked:
    asked = request.request
    arguments = json.dumps(asked.input, ensure_ascii=False) if asked.input is not None else ""
    return ToolAsked(request.request_id or "", asked.tool_call_id or "", asked.tool_name or "tool", arguments, ended)


def turn_error(
    stop_reason: str | None, error: str | None, base_url: str = "", lasting: bool = False
) -> LettaError | None:
    """A failed turn's stop reason and error text as one of the bridge's kinds, in plain words. `lasting`: the
    server said the turn would fail again (its `retryable: false`)."""
    if stop_reason not in ERROR_STOP_REASONS and stop_reason != "cancelled":
        return None
    said = plain(error)
    if stop_reason == "cancelled":
        return LettaError(Kind.RUN_FAILED, "the answer was cancelled on the server", base_url=base_url)
    if said.startswith("Conversation ") and said.endswith(" not found"):
        # The wording `LettaError.conversation_gone` knows: the runners give the thread a new conversation.
        return LettaError(Kind.NOT_FOUND, f"Conversation not found: {said.split()[1]}", base_url=base_url)
    if said.startswith("Agent ") and said.endswith(" not found"):
        return LettaError(Kind.NOT_FOUND, said, base_url=base_url)
    if STUCK in said:
        return LettaError(Kind.CONFLICT, said, base_url=base_url)
    if stop_reason == OUT_OF_STEPS:  # said as on REST, should the server behind the App Server end a turn so
        return failed_run(ERROR_STOP_REASONS[OUT_OF_STEPS], stop_reason, base_url)
    if lasting:
        failure = LettaError(Kind.RUN_FAILED, _without_terminal_hints(said), base_url=base_url)
        failure.lasting = True
        return failure
    if stop_reason == "llm_api_error":
        return LettaError(Kind.RUN_FAILED, f"the model provider failed: {said or 'no detail'}", base_url=base_url)
    return LettaError(Kind.RUN_FAILED, said or f"stop reason {stop_reason}", base_url=base_url)


def conversation_stuck(error: LettaError) -> bool:
    """0.34.12: the conversation refuses every input until the App Server restarts (a socket closed while it
    ran); another conversation of the agent works, so the thread should get a new one."""
    return error.kind == Kind.CONFLICT and STUCK in error.detail


def _without_terminal_hints(said: str) -> str:
    """The server's words less its sentences for Letta Code's terminal (`... choose another model with /model.`):
    /model is no command in Slack."""
    sentences = re.split(r"(?<=\.)\s+", said)
    return " ".join(s for s in sentences if "/model" not in s).rstrip(".") or said


def plain(error: str | None, limit: int = 200) -> str:
    """The words inside an error text. A provider failure comes as JSON text `{"error":{"error":{message}}}`
    whose message is itself `<status>: <the provider's JSON body>` (capture ws-llm-error-500.json)."""
    if not error:
        return ""
    text = _message(error)
    status = re.fullmatch(r"(\d{3}): (\{.*\})", text, re.DOTALL)
    if status:
        text = f"HTTP {status[1]}: {_message(status[2])}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text
    while isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            data = inner
            continue
        message = data.get("message") or data.get("detail") or inner
        return str(message) if message else text
    return text
