"""The queue notice's words and its pure rules (notices.py keeps them current): what it says, why a thread waits
longer than its count (a tool call waiting for a person's decision), and when a changed count is worth an edit."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.store.slack_changes import HOW_TAKEN_BACK
from bridge.store.slack_changes import TakenBack as TakenBack

QUEUED = "Queued: I'll answer after the {count} earlier message{s} in {place}."
DM_PLACE = "our conversation"  # a 1:1 DM is no channel (the agents are told "a direct message" too)
WITHDRAWN_NOTICE = "Not answered: the message was deleted before its turn came."
EDITED_AWAY_NOTICE = "Not answered: the message was edited to speak to someone else before its turn came."
UNMENTIONED_NOTICE = "Not answered: the message was edited so that it no longer mentions the bot before its turn came."
EMPTIED_NOTICE = "Not answered: the message was edited to leave nothing to answer before its turn came."
EDITED_STOP_NOTICE = "Not answered: the message was edited to stop before its turn came."
# Why a waiting turn was taken back (store/slack_changes.py): the log's words and its queue notice's for each.
TAKEN_BACK: dict[TakenBack, tuple[str, str]] = {
    "deleted": (HOW_TAKEN_BACK["deleted"], WITHDRAWN_NOTICE),
    "addressed": (HOW_TAKEN_BACK["addressed"], EDITED_AWAY_NOTICE),
    "unmentioned": (HOW_TAKEN_BACK["unmentioned"], UNMENTIONED_NOTICE),
    "emptied": (HOW_TAKEN_BACK["emptied"], EMPTIED_NOTICE),
    "stop": (HOW_TAKEN_BACK["stop"], EDITED_STOP_NOTICE),
}
STOPPED_NOTICE = "Not answered: stopped before its turn came."
UNBOUND_NOTICE = "Not answered: this channel was disconnected from Letta before its turn came."
UNBOUND_DM_NOTICE = f"Not answered: {DM_PLACE} was disconnected from Letta before its turn came."
WAITS = "one of them waits for someone to approve or deny {agent}'s tool call `{tool}` on its card."
STALE_SECONDS = 60.0  # a notice whose count fell is edited at least this often, even by less than half


def queued_text(count: int, where: str, approval: Pending | None = None, direct: bool = False) -> str:
    """The notice's words; where a tool call ahead waits for a person's decision, that is why (and it may be long).
    `direct`: the thread is in a DM, whose messages are not "in this channel"."""
    place = DM_PLACE if direct and where == "channel" else f"this {where}"
    text = QUEUED.format(count=count, s="" if count == 1 else "s", place=place)
    if approval is None:
        return text
    return text[:-1] + "; " + WAITS.format(agent=approval.agent, tool=approval.tool)


def worth_editing(shown: int, now_ahead: int, seconds_since_edit: float) -> bool:
    """Whether a notice showing `shown` should be edited to `now_ahead` (> 0)."""
    if now_ahead > shown:
        return True
    if now_ahead == shown:
        return False
    return now_ahead <= shown // 2 or seconds_since_edit >= STALE_SECONDS


@dataclass(frozen=True)
class Pending:
    """A tool call ahead of the thread's message that waits for a person's decision."""

    agent: str
    tool: str
