"""A person's deletion or edit of a message the bridge made (or will make) a turn of.

While the turn waits, a deletion (or an edit away from the bot, or down to nothing) withdraws it, and an edit gives
it the message's words and files now, unless it already took a newer edit (store/slack_changes.py). Slack promises
no order, and delivers an event again (a minute later, with the payload it first had) when its first delivery
failed, say while the bridge restarted: the person may delete or correct the message in between. A deletion or edit
that found no turn is therefore remembered for a while, in this process (Slack retries within minutes), and the
mention's retry makes no turn (deleted, or edited so that it took the question back), or a turn with the edited
words and files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from bridge.domain import Turn
from bridge.metrics import Metrics
from bridge.notice_words import TAKEN_BACK, TakenBack
from bridge.notices import QueueNotices
from bridge.store.base import Store
from bridge.store.slack_changes import edit_order, edit_turn, withdraw_turn

log = logging.getLogger("bridge.relay")  # the relay's lines, as they were written before this module

KEPT_FOR = 600.0  # seconds a change is remembered for a mention Slack may still deliver again
REMEMBERED = 500  # changes of each kind kept at most: the oldest go first (Slack retries few events at once)

MessageKey = tuple[str, str, str]  # workspace, channel, message ts
Kept = tuple[str, ...] | None  # the ids of the files an edited message still has (None: the edit did not say)
Edited = tuple[str, str, str, str, Kept, str]  # an edit: workspace, channel, ts, words, files kept, `edited.ts`
# Whom an edited message asks (decide.edit_asks): "" the bot (its mention, a direct message), a thread's ts for a
# reply there without the mention, None nobody the bot answers for.
Asks = str | None
_Change = TypeVar("_Change")


@dataclass(frozen=True)
class EarlyEdit:
    """The newest edit of a message whose turn was not stored yet: its words, the ids of the files it still has
    (None when the edit did not say) and its time (`edited.ts`); or, `taken_back`, why it took the question back
    (edited to stop, to someone else, to no mention, to nothing), so that the mention's retry makes no turn."""

    text: str
    kept: Kept
    edited_ts: str
    at: float
    taken_back: TakenBack | None = None

    def applied(self, turn: Turn) -> Turn:
        """The turn as the edited message has it: its words, and only the files still there."""
        files = turn.files if self.kept is None else tuple(f for f in turn.files if f.id in self.kept)
        return replace(turn, text=self.text, files=files)


class EarlyChanges:
    """Deletions and edits that found no turn waiting, each for KEPT_FOR seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deleted: dict[MessageKey, float] = {}
        self._edited: dict[MessageKey, EarlyEdit] = {}

    def held(self) -> int:
        """How many changes the memory holds, of both kinds."""
        return len(self._deleted) + len(self._edited)

    def deleted(self, key: MessageKey) -> None:
        """The message was deleted and no turn of it waited."""
        self._deleted.pop(key, None)  # the newest change goes last, and is trimmed last
        self._deleted[key] = self._clock()
        _trim(self._deleted, self._clock() - KEPT_FOR, lambda at: at)

    def was_deleted(self, key: MessageKey) -> bool:
        """Whether the message was deleted within KEPT_FOR seconds: its mention makes no turn."""
        return self._deleted.get(key, -KEPT_FOR) > self._clock() - KEPT_FOR

    def edited(
        self, key: MessageKey, text: str, kept: Kept, edited_ts: str, taken_back: TakenBack | None = None
    ) -> None:
        """The message was edited (to `text`, or so that it was `taken_back`) and no turn of it waited: kept unless
        a newer edit of it is (Slack may deliver the older one last)."""
        known = self._edited.get(key)
        if known is not None and edit_order(edited_ts) <= edit_order(known.edited_ts) and edit_order(edited_ts):
            return
        self._edited.pop(key, None)  # the newest change goes last, and is trimmed last
        self._edited[key] = EarlyEdit(text, kept, edited_ts, self._clock(), taken_back)
        _trim(self._edited, self._clock() - KEPT_FOR, lambda edit: edit.at)

    def edit_of(self, key: MessageKey) -> EarlyEdit | None:
        """The newest edit of the message within KEPT_FOR seconds, for its mention's turn to take."""
        edit = self._edited.get(key)
        return edit if edit is not None and edit.at > self._clock() - KEPT_FOR else None


def _trim(kept: dict[MessageKey, _Change], expired: float, at: Callable[[_Change], float]) -> None:
    """Forget the changes made at or before `expired` (the oldest come first: each goes last when made), then the
    oldest beyond REMEMBERED."""
    while kept and (len(kept) > REMEMBERED or at(next(iter(kept.values()))) <= expired):
        del kept[next(iter(kept))]


class MessageChanges:
    """The relay's answer to a message deleted or edited in Slack (`Relay.withdraw`, `edit`, `edited_away`), and
    the mention's turn as the message is now (`before_accept`, `after_accept`)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        notices: QueueNotices,
        not_followed: Callable[[str, str, str, str], Awaitable[str | None]],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._notices = notices
        self._not_followed = not_followed
        self._early = EarlyChanges()

    def before_accept(self, turn: Turn) -> tuple[Turn, EarlyEdit | None] | None:
        """The turn as its message is now, with the early edit it took; None when the message was deleted (or
        edited to nothing) before it arrived: no turn."""
        message = (turn.team_id, turn.channel_id, turn.message_ts)
        if self._early.was_deleted(message):
            log.info("event dropped: its message was deleted before it arrived ts=%s", turn.message_ts)
            return None
        early = self._early.edit_of(message)
        if early is None:
            return turn, None
        if early.taken_back is not None:
            how = TAKEN_BACK[early.taken_back][0]
            log.info("event dropped: its message was %s before it arrived ts=%s", how, turn.message_ts)
            return None
        turn = early.applied(turn)
        if not turn.text and not turn.files:
            log.info("event dropped: its message was edited to nothing before it arrived ts=%s", turn.message_ts)
            return None
        return turn, early

    async def after_accept(self, turn: Turn, early: EarlyEdit) -> None:
        """The stored turn keeps the early edit's time, so that an older edit delivered later leaves its words."""
        await edit_turn(self._store, turn.team_id, turn.channel_id, turn.message_ts, early.text, early.kept,
                        early.edited_ts)

    async def withdraw(
        self,
        team_id: str,
        channel_id: str,
        message_ts: str,
        why: TakenBack = "deleted",
        edited_ts: str = "",
        asks: Asks = "",
    ) -> None:
        """A message deleted in Slack (or edited, at `edited_ts`, so that it no longer speaks to the bot,
        `addressed` to someone else, or `emptied` of anything to answer): the person took the question back, so its
        turn, while it still waits, is never run, unless it took a newer edit (Slack delivers in no promised
        order). One already started runs to its end: the agents have the question, and its thread stays in Slack
        under the deleted message. An edit's take-back that found no turn is remembered where the bot would answer
        the message (`asks`, see `_answered`)."""
        withdrawn = await withdraw_turn(self._store, team_id, channel_id, message_ts, why, edited_ts)
        if withdrawn == "older":
            log.info("an older edit delivered late left the turn's words ts=%s", message_ts)
        if isinstance(withdrawn, str):  # or the same edit again: nothing to say
            return
        if withdrawn is None and why == "deleted":  # every edit of any message would crowd out the deletions
            self._early.deleted((team_id, channel_id, message_ts))
        elif withdrawn is None and await self._answered(team_id, channel_id, message_ts, asks):
            # an edit that took the question back: the mention's retry makes no turn either
            self._early.edited((team_id, channel_id, message_ts), "", None, edited_ts, why)
        if withdrawn is not None:
            self._metrics.turn_not_run("withdrawn")  # here, once: the store's update took it from the queue
            fields = {"channel": channel_id, "binding": f"{team_id}:{channel_id}"}
            how, words = TAKEN_BACK[why]
            log.info("turn withdrawn: its message was %s before it ran turn_id=%s", how, withdrawn[0], extra=fields)
            self._notices.withdrawn((team_id, channel_id, withdrawn[1]), words)

    async def edited_away(self, thread_ts: str, edit: Edited, asks: Asks = "") -> None:
        """A thread reply (in `thread_ts`) whose mention of the bot was edited out: still a turn where a follow-up
        would be one (the bot answers in this thread), with its new words; taken back where only the mention made
        it one."""
        team_id, channel_id, message_ts, _, _, edited_ts = edit
        if not await self._not_followed(team_id, channel_id, thread_ts, message_ts):
            await self.edit(*edit, asks=asks)
        else:
            await self.withdraw(team_id, channel_id, message_ts, "addressed", edited_ts, asks)

    async def edit(
        self,
        team_id: str,
        channel_id: str,
        message_ts: str,
        text: str,
        kept: Kept = None,
        edited_ts: str = "",
        asks: Asks = "",
    ) -> None:
        """A message edited in Slack (at `edited_ts`): its turn, while it still waits, answers the new words, with
        only the files whose ids are `kept` (the message's now; None when the edit did not say), unless it took a
        newer edit; one already started answers what it was asked (the agents have it, and its files). An edit
        that found no turn is remembered where the bot would answer the message (`asks`, see `_answered`): the
        mention's retry, with the words it first had, takes it."""
        edited = await edit_turn(self._store, team_id, channel_id, message_ts, text, kept, edited_ts)
        if edited == "emptied":  # no words left, and no files (the edit did not name any: it had none)
            await self.withdraw(team_id, channel_id, message_ts, "emptied", edited_ts, asks)
        elif edited == "older":
            log.info("an older edit delivered late left the turn's words ts=%s", message_ts)
        elif edited is None:
            if await self._answered(team_id, channel_id, message_ts, asks):
                self._early.edited((team_id, channel_id, message_ts), text, kept, edited_ts)
        elif not isinstance(edited, str):  # "same": Slack sends one edit twice; "past": it no longer waits
            log.info("turn edited before it ran turn_id=%s", edited[0], extra={"channel": channel_id})

    async def _answered(self, team_id: str, channel_id: str, message_ts: str, asks: Asks) -> bool:
        """Whether the bot would answer the edited message (that found no turn), so that its mention's retry may
        still come: one that mentions it (or a direct message), or a follow-up in a thread it answers. Any other
        message's edit is not remembered: the memory would hold the words of every edit in every channel."""
        if asks is None or asks == "":
            return asks == ""
        return not await self._not_followed(team_id, channel_id, asks, message_ts)
