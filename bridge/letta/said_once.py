"""A failure of the server itself (SERVER_WIDE: Letta down, the key rejected, a rate limit) that several agents of
one turn meet is said once: the first agent's failure as it came, then one note naming the others in words true of
each: those sent the message at once that met it too (a broadcast, a supervisor's workers), and those never sent it
because of it (the agents after it in order, a supervisor's manager). The note names whose failure it was, as more
than one can be said in a turn and another agent's own may come between. A thread read three times the same
sentence for one cause before."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.domain import AgentFailure, TurnEvent
from bridge.letta.errors import SERVER_WIDE
from bridge.word_lists import and_list


def not_asked(names: Sequence[str], stop: AgentFailure, index: int) -> AgentFailure:
    """The note that `names` were never sent the message after `stop`, a failure they would have met too."""
    return AgentFailure(None, f"{_unasked(names)}, for the same reason.", stop.kind, step="rest", index=index)


def _unasked(names: Sequence[str]) -> str:
    return f"{', '.join(names)} {'was' if len(names) == 1 else 'were'} not asked"


class SaidOnce:
    """The events of agents asked at once, the first server-wide failure among them kept (`stop`); another agent's
    failure of the kind and words of any server-wide one said already is held back, to be named in `note` beside
    the agent that said it. One in other words (naming the agent: a timeout, a rate limit met after Letta began
    answering) is that agent's own, said as it came; coming first, it must not let the shared one that follows be
    said once per agent."""

    def __init__(self) -> None:
        self.stop: AgentFailure | None = None
        self._said: dict[tuple[str, str], str | None] = {}  # (kind, words) of each server-wide failure said: whose
        self._held: dict[str, str | None] = {}  # each agent whose failure was held back: whose it repeated

    def sift(self, events: Sequence[TurnEvent]) -> list[TurnEvent]:
        kept: list[TurnEvent] = []
        for event in events:
            if isinstance(event, AgentFailure) and event.kind in SERVER_WIDE:
                self.stop = self.stop or event
                said = (event.kind, event.message)
                if event.agent_name and said in self._said:
                    self._held.setdefault(event.agent_name, self._said[said])
                    continue
                self._said[said] = event.agent_name
            kept.append(event)
        return kept

    def note(self, unasked: Sequence[str], index: int) -> AgentFailure | None:
        """Who was sent the message and met a failure said already, with whose it was ("bob met the same failure as
        alice"), and `unasked`, never sent it because of the first (`stop`)."""
        unasked = [n for n in dict.fromkeys(unasked) if n not in self._held]
        if self.stop is None or not (self._held or unasked):
            return None
        whose: dict[str | None, list[str]] = {}
        for name, first in self._held.items():
            whose.setdefault(first, []).append(name)
        parts = [f"{and_list(met)} met the same failure" + (f" as {first}" if first else "")
                 for first, met in whose.items()]
        if unasked:
            parts.append(_unasked(unasked) + _why(self.stop.agent_name, list(whose)))
        return AgentFailure(None, "; ".join(parts) + ".", self.stop.kind, step="rest", index=index)


def _why(first: str | None, named: list[str | None]) -> str:
    """Why the unasked were spared: the first failure, `first`'s, as "it" where the note has just named it alone."""
    if named == [first]:
        return " because of it"
    return f" because of {first}'s failure" if first else ", for the same reason"
