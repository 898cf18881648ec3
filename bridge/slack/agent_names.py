"""Agents named in the bridge's own words as their replies show them.

A reply shows under SLACK_AGENTS' `display_name` when one is set; a notice that named the agent by its Letta name
("alice sent an empty reply.") would name someone the thread never saw. The Letta side words its failures with
Letta's names, which it knows; rendering shows them as Slack does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class ShownNames:
    def __init__(self, display: Mapping[str, str | None]) -> None:
        self._display = {name: shown for name, shown in display.items() if shown and shown != name}
        longest_first = sorted(self._display, key=len, reverse=True)  # "ann" never cuts into "anna"
        self._names = (
            re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, longest_first)) + r")(?![\w-])")
            if self._display
            else None
        )

    def name(self, agent_name: str) -> str:
        """The agent's name as its replies show it: its display name, else its Letta name."""
        return self._display.get(agent_name, agent_name)

    def words(self, text: str) -> str:
        """`text` with each agent that has a display name named by it (whole names only)."""
        if self._names is None:
            return text
        return self._names.sub(lambda m: self._display[m.group(1)], text)
