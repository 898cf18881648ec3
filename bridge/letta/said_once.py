"""A failure of the server itself (SERVER_WIDE: Letta down, the key rejected, a rate limit) that several agents of
one turn meet is said once: the first agent's failure as it came, then one note naming the others, whether they
were asked at once and met it too (a broadcast, a supervisor's workers) or were never asked (the agents after it
in order, a supervisor's manager). A thread read three times the same sentence for one cause before."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.domain import AgentFailure, TurnEvent
from bridge.letta.errors import SERVER_WIDE


def not_asked(names: Sequence[str], stop: AgentFailure, index: int) -> AgentFailure:
    """The note that `names` were left unasked after `stop`, a failure they would have met too."""
    verb = "was" if len(names) == 1 else "were"
    return AgentFailure(None, f"{', '.join(names)} {verb} not asked, for the same reason.", stop.kind, step="rest",
                        index=index)


class SaidOnce:
    """The events of agents asked at once, the first server-wide failure among them kept (`stop`); another agent's
    failure of its kind in the same words is held back, to be named in `note`. One in other words (naming the
    agent: a timeout, a rate limit met after Letta began answering) is that agent's own, said as it came."""

    def __init__(self) -> None:
        self.stop: AgentFailure | None = None
        self._held: list[str] = []

    def sift(self, events: Sequence[TurnEvent]) -> list[TurnEvent]:
        kept: list[TurnEvent] = []
        for event in events:
            if isinstance(event, AgentFailure) and event.kind in SERVER_WIDE:
                if self.stop is None:
                    self.stop = event
                elif event.agent_name and (event.kind, event.message) == (self.stop.kind, self.stop.message):
                    self._held.append(event.agent_name)
                    continue
            kept.append(event)
        return kept

    def note(self, unasked: Sequence[str], index: int) -> AgentFailure | None:
        """Who met the first server-wide failure too, and `unasked`, who is not asked because of it."""
        names = list(dict.fromkeys([*self._held, *unasked]))
        if self.stop is None or not names:
            return None
        return not_asked(names, self.stop, index)
