"""Reading Letta's SSE streams, whose framing differs by version (see ../shared/reference/letta §7, §8).

An error can arrive as an `event: error`, as a bare `{"error": ...}` data line inside a 200, as an
`error_message`, or as a non-2xx status whose body is itself SSE; a stream can also stop with no `[DONE]`.
All of them become a `LettaError`; the messages before it have already been handed on.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import TypeAdapter, ValidationError

from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import (
    AssistantMessage,
    LettaMessage,
    StopReason,
    ToolReturnMessage,
    failed_run,
    stop_failure,
)
from bridge.letta.sse import SseEvent
from bridge.letta.supervised import SUPERVISOR_TOOL, worker_replies

MESSAGE: TypeAdapter[LettaMessage] = TypeAdapter(LettaMessage)
# After [DONE] Letta ends the response; reading that end (briefly) lets aiohttp keep the connection for the next
# send instead of closing it and connecting anew.
DRAIN_SECONDS = 0.5
# 0.11.x words a model provider's failure `INTERNAL_SERVER_ERROR: OpenAI API error: Error code: 500 - {...}`, the
# provider's body a Python repr (capture 0.11.7/llm500-agents-stream.json).
PROVIDER_FAILURE = re.compile(
    r"(?:[A-Z_]+: )?(?P<said>.*?)Error code: (?P<status>\d{3}) - (?P<body>\{.*\})\s*", re.DOTALL
)
PROVIDER_BODY_LIMIT = 4000


def error_detail(data: Any) -> str | None:
    """The error an SSE data payload carries, in any of the captured shapes, or None."""
    if not isinstance(data, dict):
        return None
    if data.get("message_type") == "error_message":
        return str(data.get("message") or data.get("detail") or data.get("error_type") or "error")
    if "message_type" not in data and "error" in data:
        error = data["error"]
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        return provider_words(str(error))
    return None


def provider_words(text: str) -> str:
    """A provider failure as Slack should read it: its message, not its body printed as a Python dict."""
    found = PROVIDER_FAILURE.fullmatch(text) if len(text) <= PROVIDER_BODY_LIMIT else None
    if found is None:
        return text
    try:
        body = ast.literal_eval(found["body"])  # a repr, not JSON (None, single quotes); literals only, never run
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    while isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return text
    said = found["said"].strip().rstrip(":").strip() or "the model provider failed"
    return f"{said} (HTTP {found['status']}): {' '.join(message.split())}"


def sse_error_text(body: str) -> str:
    """The error detail inside an SSE body that came with an error status (0.11.7 agent stream on a 500)."""
    for line in body.splitlines():
        if line.startswith("data:"):
            try:
                detail = error_detail(json.loads(line[5:].strip()))
            except ValueError:
                continue
            if detail:
                return detail
    return ""


async def messages(events: AsyncIterator[SseEvent], base_url: str) -> AsyncIterator[LettaMessage]:
    done = stopped = False
    stop_error: str | None = None
    reason: str | None = None  # the stop reason of a run that failed
    async for event in events:
        if not event.data and event.event != "error":
            continue  # a block with no data (retry:, id:, a named event alone) is no message (WHATWG dispatch rule)
        if event.data == "[DONE]":
            done = True
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    async for _ in events:
                        pass
            break
        data = _json(event, base_url)
        detail = error_detail(data)
        if detail is not None or event.event == "error":
            raise failed_run(detail or stop_error or "error event", reason, base_url)
        try:
            message = MESSAGE.validate_python(data)
        except ValidationError:
            raise LettaError(Kind.BAD_RESPONSE, "a stream event the bridge could not read", base_url=base_url) from None
        if isinstance(message, StopReason):
            stopped = True
            if failure := stop_failure(message.stop_reason):
                stop_error, reason = failure, message.stop_reason
        yield message
    if stop_error:
        raise failed_run(stop_error, reason, base_url)
    if not done and not stopped:
        raise LettaError(Kind.DISCONNECTED, "the stream ended before Letta said it was done", base_url=base_url)


def _json(event: SseEvent, base_url: str) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise LettaError(Kind.BAD_RESPONSE, "a stream event was not JSON", base_url=base_url) from None


def supervised_replies(message: ToolReturnMessage) -> list[tuple[str, str]]:
    """(agent id, reply) per worker when this is a supervisor's broadcast tool return, else []."""
    if message.name != SUPERVISOR_TOOL and " said:" not in (message.tool_return or ""):
        return []
    return worker_replies(message.tool_return)


@dataclass
class Collector:
    """Turns streamed assistant messages into replies as early as they are known to be complete.

    A whole `assistant_message` (no token streaming) is complete when it arrives, so it is handed on at once:
    the first agent's answer is posted while the next agent is still thinking. Token fragments share an otid
    and are joined; such a message is complete when another message or speaker starts, or the stream ends.
    A reasoning message may share an assistant message's id, so otid (not id) is the key.
    A supervisor's `send_message_to_all_agents_in_group` tool return gives one reply per worker, authored by
    the worker's agent id (the runner maps ids to names).
    """

    default_author: str
    tokens: bool = False
    replies: list[tuple[str, str]] = field(default_factory=list)
    _pending: tuple[str, str] | None = None  # (author, otid) of a message still growing
    _text: str = ""

    def add(self, message: LettaMessage) -> list[tuple[str, str]]:
        if isinstance(message, ToolReturnMessage):
            workers = supervised_replies(message)
            if not workers:
                return []
            done = self.finish()
            for worker in workers:
                done += self._emit(*worker)
            return done
        if not isinstance(message, AssistantMessage):
            # In a group stream, another member speaking (its reasoning, say) completes the pending reply.
            name = getattr(message, "name", None)
            if self.tokens and self._pending is not None and name and name != self._pending[0]:
                return self.finish()
            return []
        author = message.name or self.default_author
        if not self.tokens:
            return self._emit(author, message.text)
        key = (author, message.otid or message.id or "")
        done = self.finish() if self._pending is not None and self._pending != key else []
        self._pending = key
        self._text += message.text
        return done

    @property
    def growing(self) -> tuple[str, str] | None:
        """(author, text so far) of a token-streamed message not yet complete."""
        return None if self._pending is None else (self._pending[0], self._text)

    def finish(self) -> list[tuple[str, str]]:
        if self._pending is None:
            return []
        author, text = self._pending[0], self._text
        self._pending, self._text = None, ""
        return self._emit(author, text)

    def _emit(self, author: str, text: str) -> list[tuple[str, str]]:
        text = text.strip()
        if not text:
            return [(author, "")]  # a blank message: said in the thread as an empty reply, never posted as one
        self.replies.append((author, text))
        return [(author, text)]
