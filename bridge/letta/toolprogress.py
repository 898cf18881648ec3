"""A tool call's progress read out of Letta's messages while they stream, for a draft that shows it as it happens.

Token-streamed, a call arrives as fragments of one `tool_call_message` sharing its `tool_call_id`: the first
carries the tool's name, the rest only more of the arguments; its `tool_return_message` follows with `status`
`success` or `error` (a tool that raised), before the reply's tokens (reference/letta/README.md §20). So a call is
pending while its arguments are still coming, running once they are whole JSON (the server runs it then), and
done or failed by its return. Each change is given once, under the agent that made the call.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.domain import Drafts, ToolProgress, ToolState
from bridge.letta.models import LettaMessage, ToolCallMessage, ToolReturnMessage
from bridge.letta.notes import SILENT_TOOLS

# Called with (author, progress) as a tool call of a streamed reply moves on.
Report = Callable[[str, ToolProgress], Awaitable[None]]


@dataclass
class _Call:
    author: str
    name: str = ""
    arguments: str = ""
    state: ToolState | None = None


def _whole(arguments: str) -> bool:
    try:
        json.loads(arguments)
    except ValueError:
        return False
    return True


def one_line(text: str) -> str:
    return " ".join(text.split())


class ToolWatch:
    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._last_call: dict[str, str] = {}  # message otid/id -> the tool_call_id its fragments continue

    def add(self, message: LettaMessage, author: str) -> list[tuple[str, ToolProgress]]:
        """(author, progress) when this message moves a tool call on; [] for any other message."""
        if isinstance(message, ToolCallMessage):
            moved: list[tuple[str, ToolProgress]] = []
            for fragment in message.calls:  # a model's parallel calls come in one message
                whose = message.otid or message.id or ""
                key = fragment.tool_call_id or self._last_call.get(whose) or whose
                self._last_call[whose] = key
                call = self._calls.setdefault(key, _Call(author))
                call.name = call.name or fragment.name or ""
                call.arguments += fragment.arguments or ""
                moved += self._moved(key, call, "running" if _whole(call.arguments) else "pending")
            return moved
        if isinstance(message, ToolReturnMessage):
            moved = []
            for result in message.returns():  # parallel calls are answered in one message
                key = result.tool_call_id or ""
                found = self._calls.get(key)
                if found is None:
                    continue
                if result.status == "error":
                    moved += self._moved(key, found, "failed", result.tool_return or "")
                else:
                    moved += self._moved(key, found, "done")
            return moved
        return []

    @staticmethod
    def _moved(key: str, call: _Call, state: ToolState, output: str = "") -> list[tuple[str, ToolProgress]]:
        if state == call.state or call.name in SILENT_TOOLS:
            return []
        call.state = state
        progress = ToolProgress(key, call.name or "tool", one_line(call.arguments), state, one_line(output))
        return [(call.author, progress)]


def reporting(drafts: Drafts | None, key: str, name: str, index: int = 0) -> Report | None:
    """The asked agent's tool calls shown in the draft of its reply `key` (another author's are not its own)."""
    if drafts is None:
        return None

    async def report(author: str, progress: ToolProgress) -> None:
        if author == name:
            await drafts.tool(key, index, name, progress)

    return report
