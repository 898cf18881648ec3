"""Agents named in the bridge's own words as their replies show them.

A reply shows under SLACK_AGENTS' `display_name` when one is set; a notice that named the agent by its Letta name
("alice sent an empty reply.") would name someone the thread never saw. Where the bridge words a notice it names
the agent by `name`; a failure the Letta side worded (with Letta's names, which it knows) is renamed by `words`,
which changes a name only where it stands as a word of the sentence: never inside a code span, a URL, a path or a
command (`/letta connect`, http://letta:8283).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_CODE = re.compile(r"(`+).*?\1", re.DOTALL)
_BEFORE = r"(?:(?<=^)|(?<=[\s(\"“‘]))"  # a sentence's word starts after a space or an opening mark
_START = r"(?:(?<=^)|(?<=[.!?] ))"  # a sentence's start: the text's, or after its last one ended
_AFTER = r"(?=$|[\s,;!?)\"”’]|'s\b|’s\b|[.:](?:\s|$))"  # and ends before a space, a mark, 's, or a last . or :


class ShownNames:
    def __init__(self, display: Mapping[str, str | None]) -> None:
        self._display = {name: shown for name, shown in display.items() if shown and shown != name}
        # A sentence the Letta side begins with the agent capitalises its name ("Alice is busy…"): taken only at a
        # sentence's start, and never "Letta", which the bridge's words use for the server.
        self._starts = {
            _upper_first(n): _upper_first(s)
            for n, s in self._display.items()
            if _upper_first(n) not in (n, "Letta") and _upper_first(n) not in self._display
        }
        self._words = {**self._starts, **self._display}
        names = "|".join(map(re.escape, sorted(self._display, key=len, reverse=True)))  # "ann" never cuts "anna"
        starts = "|".join(map(re.escape, sorted(self._starts, key=len, reverse=True)))
        either = f"{_BEFORE}({names}){_AFTER}" + (f"|{_START}({starts}){_AFTER}" if starts else "")
        self._names = re.compile(either) if self._display else None

    def name(self, agent_name: str) -> str:
        """The agent's name as its replies show it: its display name, else its Letta name."""
        return self._display.get(agent_name, agent_name)

    def words(self, text: str) -> str:
        """`text` with each agent that has a display name named by it, where it stands as a word, outside code."""
        if self._names is None:
            return text
        names = self._names
        out, last = [], 0
        for code in _CODE.finditer(text):
            out.append(names.sub(lambda m: self._words[m.group(m.lastindex or 0)], text[last : code.start()]))
            out.append(code.group())
            last = code.end()
        out.append(names.sub(lambda m: self._words[m.group(m.lastindex or 0)], text[last:]))
        return "".join(out)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]
