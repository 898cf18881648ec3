"""Pure: the text after the slash command becomes a `Command` to run, or `Usage` (with what was wrong, if anything).

Ids are only split and cleaned here; their shape and existence are checked where Letta is known (`bridge.targets`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Action = Literal["connect", "disconnect", "status", "groups", "agents", "setup", "stop"]

# Commands that change a binding, and so need permission; the others only read.
CHANGES: frozenset[Action] = frozenset({"connect", "disconnect", "setup"})
_ACTIONS: dict[str, Action] = {
    "connect": "connect",
    "bind": "connect",
    "disconnect": "disconnect",
    "unbind": "disconnect",
    "status": "status",
    "groups": "groups",
    "agents": "agents",
    "setup": "setup",  # OAuth mode: this workspace's Letta server (docs/workspaces.md)
    "stop": "stop",
}
# People paste ids in backticks, quotes or Slack's <…> and separate them with commas.
_WRAPPERS = "`'\"<>()[]"


@dataclass(frozen=True)
class Command:
    action: Action
    ids: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action in CHANGES


@dataclass(frozen=True)
class Usage:
    """Show the usage text; `problem` says what was wrong with the input ("" for plain help)."""

    problem: str = ""


def words(text: str) -> list[str]:
    cleaned = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return [w.strip(_WRAPPERS) for w in re.split(r"[\s,]+", cleaned) if w.strip(_WRAPPERS)]


def parse(text: str) -> Command | Usage:
    parts = words(text)
    if not parts or parts[0].lower() in ("help", "?", "-h", "--help"):
        return Usage()
    first, rest = parts[0].lower(), tuple(parts[1:])
    action = _ACTIONS.get(first)
    if action is None:
        return Usage(f"I don't know `{first[:40]}`.")
    if action != "connect" and rest:
        return Usage(f"`{first}` takes nothing after it.")
    return Command(action, rest)
