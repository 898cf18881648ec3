"""Pure: the text after the slash command becomes a `Command` to run, or `Usage` (with what was wrong, if anything).

Ids are only split and cleaned here; their shape and existence are checked where Letta is known (`bridge.targets`).
`connect` also takes a bridge-defined group's options as `name=value` words (`pattern=supervisor
manager=agent-…`), read into a `Pattern` here and checked by the same rules as `channels connect`'s flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bridge.domain import Pattern
from bridge.slack.decide import INVISIBLE
from bridge.slack.markdown import escape_within

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
# People paste ids in backticks, quotes (a phone's smart quotes too) or Slack's <…> and separate them with commas;
# invisible characters copied with an id are dropped.
_WRAPPERS = "`'\"<>()[]“”‘’„‚«»‹›"
_ENDINGS = ".;:!?…"  # a sentence's end after an id
# `connect`'s options, as typed, and the Pattern field each sets.
_OPTIONS = {
    "pattern": "name",
    "manager": "manager",
    "max_turns": "max_turns",
    "termination_token": "termination_token",
    "token": "termination_token",
}


@dataclass(frozen=True)
class Command:
    action: Action
    ids: tuple[str, ...] = ()
    pattern: Pattern | None = None  # connect: a bridge-defined group's pattern, when one was given
    agents_menu: bool = False  # connect without ids: the menu's agent picker, even where the server has groups

    @property
    def changes(self) -> bool:
        return self.action in CHANGES


@dataclass(frozen=True)
class Usage:
    """Show the usage text; `problem` says what was wrong with the input ("" for plain help)."""

    problem: str = ""


# A word, or an option whose quoted value may hold spaces (`token="ALL DONE"`, the quotes Slack's editor curls too).
_WORD = re.compile(r"""(\w+)=(?:"([^"]*)"|“([^”]*)”|'([^']*)'|‘([^’]*)’)|[^\s,]+""")


def words(text: str) -> list[str]:
    cleaned = INVISIBLE.sub("", text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    found = []
    for match in _WORD.finditer(cleaned):
        if match.group(1):
            value = next(v for v in match.groups()[1:] if v is not None)
            found.append(f"{match.group(1)}={' '.join(value.split())}")
        elif word := match.group(0).strip(_WRAPPERS):
            found += _sentence_end(word, found)
    return found


def _sentence_end(word: str, before: list[str]) -> list[str]:
    """A word without the punctuation a sentence ends with: an id's or an option's (`manager=agent-m.`), never
    a termination token's (`token=DONE!` is the manager's word as typed). A lone `.` after other words is
    dropped; `?` alone, or after the command's name, is a question, not a go-ahead."""
    name, equals, value = word.partition("=")
    if equals and name.lower().replace("-", "_") in ("token", "termination_token"):
        return [word]
    bare = word.rstrip(_WRAPPERS + _ENDINGS)
    if not bare:  # after an id or option only: `disconnect ?` asks, it does not disconnect
        return [] if len(before) > 1 else [word]
    if equals and not value.rstrip(_WRAPPERS + _ENDINGS):
        return [word]
    return [bare]


def _shown(typed: str) -> str:
    """What the person typed, said back in their answer: short, and never a mention or a link (`<!here>`)."""
    return escape_within(typed, 40)


def parse(text: str) -> Command | Usage:
    parts = words(text)
    if not parts or parts[0].lower() in ("help", "?", "-h", "--help"):
        return Usage()
    first, rest = parts[0].lower(), tuple(parts[1:])
    action = _ACTIONS.get(first)
    if action is None:
        return Usage(f"I don't know `{_shown(first)}`.")
    if action != "connect" and rest:
        return Usage(f"`{_shown(first)}` takes nothing after it.")
    # `pattern = supervisor` or `pattern= supervisor`: else a lone `=` is read as an option with no name.
    if any(w.startswith("=") or (w.index("=") == len(w) - 1 and i < len(rest) - 1)
           for i, w in enumerate(rest) if "=" in w):
        return Usage("Write each option with no spaces around `=`, like `pattern=supervisor`.")
    ids = tuple(w for w in rest if "=" not in w)
    pattern = _pattern([w for w in rest if "=" in w])
    if isinstance(pattern, Usage):
        return pattern
    if pattern is not None and not ids:
        return Usage("Give the agents too: `connect agent-… agent-… pattern=…`.")
    return Command(action, ids, pattern)


def _pattern(options: list[str]) -> Pattern | Usage | None:
    """`pattern=…`, `manager=…`, `max_turns=…`, `termination_token=…` (or `token=…`), each once."""
    if not options:
        return None
    given: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        key, value = key.lower().replace("-", "_"), value.strip(_WRAPPERS)
        field = _OPTIONS.get(key)
        if field is None:
            return Usage(f"I don't know the option `{_shown(key)}`: use pattern=, manager=, max_turns= or token=.")
        if field in given:
            return Usage(f"`{_shown(key)}` is given twice.")
        if not value:
            return Usage(f"`{_shown(key)}=` needs a value.")
        given[field] = value
    turns = given.get("max_turns")
    if turns is not None and not turns.isdecimal():  # not isdigit: it is true for ², which int() refuses
        return Usage(f"`max_turns` is a number, not `{_shown(turns)}`.")
    name = given.get("name")
    return Pattern(
        name=name.lower().replace("-", "_") if name else None,
        manager=given.get("manager"),
        max_turns=int(turns) if turns is not None else None,
        termination_token=given.get("termination_token"),
    )
