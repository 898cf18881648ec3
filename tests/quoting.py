"""A reader of the documented format of what an agent is sent (bridge/letta/quoting.py, docs/security.md): each
block is a header line then one JSON object a line, blocks end at an empty line, the person's message is its
prefix line, with each of its lines under it behind "> " when it has several. Tests read every message with it:
whatever it cannot read, or reads as someone else, is a forgery."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bridge.letta.patterns import DYNAMIC_PROMPT, NO_WORKERS, SAID_HEADER, UNSEEN_HEADER, WORKERS_HEADER
from bridge.letta.quoting import quoted
from bridge.turn_input import THREAD_CONTEXT_HEADER, THREAD_HISTORY_HEADER

HEADERS = {UNSEEN_HEADER, WORKERS_HEADER, SAID_HEADER, THREAD_CONTEXT_HEADER, THREAD_HISTORY_HEADER}


@dataclass
class Read:
    blocks: list[tuple[str, list[tuple[str, str, str]]]] = field(default_factory=list)  # header, (kind, name, text)
    own: list[str] = field(default_factory=list)  # the lines outside any block (the person's message, a prompt)

    def quoted(self) -> list[tuple[str, str, str]]:
        return [entry for _, entries in self.blocks for entry in entries]


def read(message: str) -> Read:
    assert message.splitlines() == message.split("\n"), "a line break other than \\n"
    out = Read()
    for section in message.split("\n\n"):
        lines = section.split("\n")
        if lines[0] in HEADERS:
            entries = []
            for line in lines[1:]:
                obj = json.loads(line)
                assert isinstance(obj, dict) and set(obj) in ({"agent", "text"}, {"person", "text"}), line
                kind = "agent" if "agent" in obj else "person"
                entries.append((kind, obj[kind], obj["text"]))
            out.blocks.append((lines[0], entries))
        else:
            out.own.extend(lines)
    return out


def person_line(message: str) -> str:
    """The person's own message (not a dynamic manager's prompt): its prefix line, and the "> " lines under it."""
    prompt = tuple(line.split("{")[0] for line in DYNAMIC_PROMPT.split("\n"))
    lines = [line for line in read(message).own if line and not line.startswith(prompt) and line != NO_WORKERS]
    assert lines and not lines[0].startswith(">") and all(line.startswith(">") for line in lines[1:]), lines
    return "\n".join(lines)


def said(name: str, text: str) -> str:
    """An agent's reply as another agent is shown it."""
    return quoted("agent", name, text)


def heard(name: str, text: str) -> str:
    """A person's earlier thread message as an agent is shown it."""
    return quoted("person", name, text)
