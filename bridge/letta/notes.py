"""An agent's reasoning and tool calls, gathered per author while its reply is read, for channels that show them.

Token streaming splits reasoning and tool-call arguments into fragments that share an otid (reasoning) or a
`tool_call_id` (calls); they are joined here. A tool return is matched to its call by `tool_call_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.domain import Note
from bridge.letta.models import LettaMessage, ReasoningMessage, ToolCallMessage, ToolReturnMessage

# Tools whose call is the reply itself (legacy agents speak through `send_message`).
SILENT_TOOLS = frozenset({"send_message"})


@dataclass
class _Call:
    name: str = ""
    arguments: str = ""
    status: str = ""


@dataclass
class _Author:
    order: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) in the order first seen
    reasoning: dict[str, str] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)


class NoteTaker:
    def __init__(self) -> None:
        self._authors: dict[str, _Author] = {}
        self._call_owner: dict[str, str] = {}  # tool_call_id -> author
        self._last_call: dict[str, str] = {}  # message otid/id -> the tool_call_id its fragments continue

    def add(self, message: LettaMessage, author: str) -> None:
        if isinstance(message, ReasoningMessage):
            key = message.otid or message.id or ""
            notes = self._author(author)
            if key not in notes.reasoning:
                notes.order.append(("reasoning", key))
                notes.reasoning[key] = ""
            notes.reasoning[key] += message.reasoning or ""
        elif isinstance(message, ToolCallMessage):
            for call in message.calls:  # a model's parallel calls come in one message
                whose = message.otid or message.id or ""
                key = call.tool_call_id or self._last_call.get(whose) or whose
                self._last_call[whose] = key
                notes = self._author(author)
                if key not in notes.calls:
                    notes.order.append(("tool", key))
                    notes.calls[key] = _Call()
                    self._call_owner[key] = author
                notes.calls[key].name += call.name or ""
                notes.calls[key].arguments += call.arguments or ""
        elif isinstance(message, ToolReturnMessage):
            for result in message.returns():  # parallel calls are answered in one message
                key = result.tool_call_id or ""
                owner = self._authors.get(self._call_owner.get(key, ""))
                if owner is not None and key in owner.calls:
                    owner.calls[key].status = result.status or ""

    def pop(self, author: str) -> tuple[Note, ...]:
        """The author's notes so far, in order; they are not given twice."""
        notes = self._authors.pop(author, None)
        if notes is None:
            return ()
        out: list[Note] = []
        for kind, key in notes.order:
            if kind == "reasoning":
                text = " ".join(notes.reasoning[key].split())
                if text:
                    out.append(Note("reasoning", text))
                continue
            call = notes.calls[key]
            if call.name in SILENT_TOOLS:
                continue
            text = f"{call.name or 'tool'}({' '.join(call.arguments.split())})"
            out.append(Note("tool", f"{text} → {call.status}" if call.status else text))
        return tuple(out)

    def _author(self, author: str) -> _Author:
        return self._authors.setdefault(author, _Author())
