"""The pieces of one agent's REST send the bridge runner puts together: what it brought back (or a re-attached run
brought again), its refusal as the agent's failure, only the asked agent's words, and its growing draft."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple

from bridge.domain import AgentFailure, AgentRef, Drafts, Journal, Note, TurnEvent
from bridge.letta.errors import LettaError
from bridge.letta.exchange import Draft, Said, Spoken

log = logging.getLogger(__name__)


class Heard(NamedTuple):
    """What one send brought back, in `_answered`'s order: the texts, the failure inside the answer, the notes, and
    the Letta step of the last words (empty where the server names none)."""

    texts: list[str]
    failure: AgentFailure | None
    notes: tuple[Note, ...]
    step_id: str


async def refused(agent: AgentRef, key: str, error: LettaError, journal: Journal) -> list[TurnEvent]:
    """A send that never happened (or was refused): the agent's failure, journaled."""
    failure = AgentFailure(
        agent.name, error.explain(agent.name), error.kind, agent.id, error.request_id, key,
        pending_approval=error.pending_approval, target_gone=error.target_gone,
    )
    await journal.answered(key, [], failure)
    return [failure]


async def own(agent: AgentRef, spoken: AsyncIterator[Spoken]) -> AsyncIterator[Spoken]:
    """Only the asked agent's words: a reply another agent wrote into its history is left out."""
    async for item in spoken:
        if isinstance(item, Said) and item.author not in (agent.name, agent.id):
            log.info("not %s's words, left out author=%s", agent.name, item.author)
            continue
        yield item


def drafting(drafts: Drafts | None, key: str, name: str, done: list[str]) -> Draft | None:
    """A token-streamed reply growing in its draft, after the texts `done` so far (only the asked agent's words)."""
    if drafts is None:
        return None

    async def draft(author: str, text: str) -> None:
        if author == name:
            await drafts.grow(key, 0, name, "\n\n".join([*done, text]))

    return draft


async def each(items: Sequence[Spoken]) -> AsyncIterator[Spoken]:
    """What a send said, read again (a re-attached run's replies, requests found in history)."""
    for item in items:
        yield item
