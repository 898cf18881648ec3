"""The queue notice: one message per waiting thread, posted once and edited in place as the queue moves.

A mention that has to wait behind others gets a notice in its thread ("Queued: I'll answer after the 3 earlier
messages in this channel.", in a DM "in our conversation."), which says so when one of them waits for a person to
decide on a tool call (an approval card: that wait has no bound but APPROVAL_TIMEOUT_SECONDS). However many of the
thread's mentions wait, the thread has one notice, counting what is ahead of its newest waiting mention (the one
whose author waits longest), kept current by editing it.

Accepting a mention only marks its thread (no query, no task): the counting and the Slack calls happen in one
task, within Slack's rate limits, whatever the burst:
- at most one new notice a second in a channel after a short burst (notice_pacing.py), a stop's words posted in
  place of a due notice included; a thread whose turn has started by the time its notice is due gets none, and
  where turns start faster than that, the threads that will wait longest are told first;
- at most one notice edit every EDIT_SPACING seconds in the process (chat.update is Tier 3, about 50 a minute
  for the workspace, shared with drafts), and a notice edited at most every NOTICE_SPACING seconds;
- an edit only when the count grew (a notice never understates the wait), fell to half of what it shows, or
  fell and the notice is STALE_SECONDS old: a queue of N costs a thread about log2(N) edits, not N messages.
When the thread's last waiting mention goes to its agents, its notice is left as it is (what it promised came
true); when it was withdrawn instead (its message deleted or edited away), stopped, or taken only to end unrun (its
channel disconnected), the notice says it will not be answered. A turn being taken is not yet one going to its
agents: until its run says which, its notice waits.
Each notice shown is a row of `queue_notices` (store/queue_notices.py): the next start takes them up (`resume`) and
keeps them true from there; a notice still due lives in memory only, and a stop loses it (never posted twice).
With several processes each posts its own notices (a thread whose mentions reached two shows two), and the row of a
thread is its latest.
Notices are best effort: nothing here ever stops or delays a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import TypeVar

from bridge.configure import is_direct
from bridge.domain import Turn
from bridge.notice_lookups import InParallel, Moving, NoticeLookups
from bridge.notice_pacing import ChannelPacing, DrainWatch
from bridge.notice_posts import Ending, Notice, NoticeSlack
from bridge.notice_words import (
    STOPPED_NOTICE,
    UNBOUND_DM_NOTICE,
    UNBOUND_NOTICE,
    WITHDRAWN_NOTICE,
    queued_text,
    worth_editing,
)
from bridge.slack.post import SlackPoster
from bridge.store.base import Store, ThreadKey
from bridge.store.queue_notices import NoticeRow, NoticeRows

log = logging.getLogger(__name__)

EDIT_SPACING = 2.0  # seconds between two notice edits in the whole process
NOTICE_SPACING = 5.0  # seconds between two edits of one notice
CHECKS_PER_ROUND = 10  # shown notices whose count is looked up per round (each lookup is two indexed queries)

_Key = TypeVar("_Key", ThreadKey, tuple[str, str])


class QueueNotices:
    def __init__(
        self,
        store: Store,
        poster_of: Callable[[str], Awaitable[SlackPoster]],
        in_parallel: InParallel,
        set_aside: Callable[[], Collection[int]] = frozenset,
        moving: Moving = lambda _team_id, _channel_id: None,
    ) -> None:
        # (team, old channel id) -> its new id: a turn taken under the old id ends under the new one (`_now`)
        self._moved: dict[tuple[str, str], str] = {}
        self._store = store
        self._lookups = NoticeLookups(store, poster_of, in_parallel, set_aside, moving)
        self._rows = NoticeRows(store)  # each shown notice, for the next start
        self._slack = NoticeSlack(poster_of)
        # channel -> threads to tell, oldest first, each with the ts of the mention that made it wait: its notice
        # comes after that, so a post whose outcome is unknown is looked for from there on, never taken for an
        # earlier notice of the thread in the same words.
        self._due: dict[tuple[str, str], dict[str, str]] = {}
        self._pacing = ChannelPacing()
        self._drain = DrainWatch()  # which due thread is told next
        self._shown: dict[ThreadKey, Notice] = {}
        # Threads whose notice is being posted: True once another mention arrived meanwhile (count it again).
        self._posting: dict[ThreadKey, bool] = {}
        self._began: set[ThreadKey] = set()  # of those, the ones whose turn went to its agents meanwhile
        # Threads whose notice is due or being posted, told meanwhile how a waiting mention ended unrun: the words
        # the notice takes once posted (the store does not say them all: an unbound end, for one).
        self._ending: dict[ThreadKey, Ending] = {}
        # Threads with a turn being taken here, not yet known to go to the agents (`started`): their notice waits
        # to be told how it ends, an unbound end included, which the store does not say.
        self._taking: dict[ThreadKey, int] = {}
        self._next_edit = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False  # the bridge is stopping: no notice is started any more

    def waiting(self, turn: Turn) -> None:
        """A turn was accepted into its thread: the thread may be waiting now. Costs no query."""
        thread = (turn.team_id, turn.channel_id, turn.thread_ts)
        if thread in self._shown:
            notice = self._shown[thread]
            notice.checked_at, notice.answered = 0.0, False  # look at its count first: it is this mention's now
            return
        if thread in self._posting:
            self._posting[thread] = True  # its notice is on its way: edited, not posted again
            self._began.discard(thread)
            return
        if self._stopped:
            return  # an accept that began before the stop (Socket Mode): its turn waits for the next start
        channel = (turn.team_id, turn.channel_id)
        pending = self._due.setdefault(channel, {})
        pending.setdefault(turn.thread_ts, turn.message_ts)
        if len(pending) == 1:
            self._wake.set()
        self._start()

    async def resume(self) -> None:
        """At start: the notices earlier processes left showing are kept true from here, as if posted here. A thread
        waiting without one is not owed one: another process may still owe it, or have posted it before its row was
        written, and a notice posted twice is worse than one not given."""
        try:
            rows = await self._rows.all()
        except Exception as exc:  # best effort: they keep what they said
            log.info("could not read the queue notices left showing error=%s", type(exc).__name__)
            return
        since = asyncio.get_running_loop().time() - NOTICE_SPACING  # looked at in the first round
        for row in rows:
            if row.thread not in self._shown:
                self._shown[row.thread] = Notice(row.thread, row.ts, row.where, row.shown, since)
        if self._shown:
            self._start()

    def _start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), context=contextvars.Context())

    def withdrawn(self, thread: ThreadKey, words: str = WITHDRAWN_NOTICE, say: bool = False) -> bool:
        """A waiting turn of the thread was withdrawn (its message deleted, or edited away): its notice, if this
        process shows one, is looked at first, and says it will not be answered once nothing of the thread waits.
        False when no notice is showing, being posted or due here (with `say`, one due or being posted that finds
        nothing waiting any more says the words in the thread instead: `_post_next`)."""
        thread = self._now(thread)
        notice = self._shown.get(thread)
        if notice is not None:
            notice.ended, notice.checked_at, notice.answered = words, 0.0, False
        elif thread in self._posting or thread[2] in self._due.get(thread[:2], {}):
            self._ending[thread] = Ending(words, say)
        return notice is not None or thread in self._posting or thread[2] in self._due.get(thread[:2], {})

    def moved(self, team_id: str, old: str, new: str) -> None:
        """The channel's id changed (its turns and notice rows moved in the store): its notices, shown, due or being
        posted, go on under the new id, and so do turns taken under the old one once they end."""
        self._moved[(team_id, old)] = new
        was, now = (team_id, old), (team_id, new)
        for thread in [t for t in {*self._shown, *self._posting, *self._ending, *self._taking} if t[:2] == was]:
            to = (*now, thread[2])
            if (notice := self._shown.pop(thread, None)) is not None:
                notice.thread = to
                self._shown.setdefault(to, notice)  # one shown under both ids: the new id's is the one kept current
            if thread in self._posting:
                self._posting[to] = self._posting.pop(thread) or self._posting.get(to, False)
            if thread in self._ending:
                self._ending.setdefault(to, self._ending.pop(thread))
            if thread in self._taking:
                self._taking[to] = self._taking.pop(thread) + self._taking.get(to, 0)
        if was in self._due:
            due = self._due.pop(was)
            self._due[now] = {**due, **self._due.get(now, {})}
            self._wake.set()
        self._pacing.moved(was, now)
        self._drain.moved(was, now)
        for thread in [t for t in self._began if t[:2] == was]:
            self._began.discard(thread)
            self._began.add((*now, thread[2]))

    def _now(self, key: _Key) -> _Key:
        """A thread's or channel's key under its channel's id now (it may have changed, more than once)."""
        for _ in range(len(self._moved)):
            new = self._moved.get((key[0], key[1]))
            if new is None:
                break
            key = (key[0], new, *key[2:])
        return key

    @contextlib.contextmanager
    def taking(self, thread: ThreadKey) -> Iterator[Callable[[], None]]:
        """A turn of the thread is being taken and run here: while its outcome is unknown, a notice with nothing
        ahead is neither dropped nor said unanswered. Yields `going`: the turn goes to its agents (outcome known)."""
        self._taking[thread] = self._taking.get(thread, 0) + 1
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                now = self._now(thread)  # its channel's id may have changed since
                self._taking[now] -= 1
                if not self._taking[now]:
                    del self._taking[now]

        def going() -> None:
            leave()
            self.started(self._now(thread))

        try:
            yield going
        finally:
            leave()

    def started(self, thread: ThreadKey) -> None:
        """A turn of the thread goes to its agents: what the notice promised is kept, and a mention taken back
        earlier no longer says how it ends."""
        thread = self._now(thread)
        self._ending.pop(thread, None)
        if thread[:2] in self._due:
            self._drain.started(thread[:2], asyncio.get_running_loop().time())
        if thread in self._posting:
            self._began.add(thread)  # its notice, once posted, is left as it is
        notice = self._shown.get(thread)
        if notice is not None:
            notice.ended, notice.answered = None, True

    async def stopped(self, thread: ThreadKey, running: bool = False) -> bool:
        """A waiting turn of the thread was stopped (with its `running` one, whose "Stopped by …" says it): as for a
        withdrawn one, in the words of a stop. False when no notice will say so, here or in another process (its
        row): the stop's answer must, in the thread."""
        if self.withdrawn(thread, STOPPED_NOTICE, say=not running):
            return True
        return await self._shown_elsewhere(self._now(thread))

    async def _shown_elsewhere(self, thread: ThreadKey) -> bool:
        """Whether a process shows the thread a notice (its row): that notice says how its mentions ended."""
        try:
            return await self._rows.showing(thread)
        except Exception as exc:  # unknown: said here (said twice rather than never)
            log.info("could not read the thread's queue notice error=%s", type(exc).__name__)
            return False

    def unbound(self, thread: ThreadKey) -> None:
        """A turn of the thread ended unrun, its channel disconnected: as for a withdrawn one, in those words."""
        self.withdrawn(thread, UNBOUND_DM_NOTICE if is_direct(thread[1]) else UNBOUND_NOTICE)

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._round(loop.time())
            except Exception as exc:  # a notice that cannot be given never stops anything
                log.info("queue notices skipped a round error=%s", type(exc).__name__)
            now = loop.time()
            waits = [self._pacing.post_at(channel, now) for channel in self._due]
            if self._shown:
                waits.append(max(self._next_edit, now + 0.5))
            self._wake.clear()
            if not waits:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, min(waits) - now)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _round(self, now: float) -> None:
        for channel in list(self._due):
            if self._pacing.post_at(channel, now) <= now:
                await self._post_next(channel, now)
        if self._shown and self._next_edit <= now:
            await self._refresh(now)

    async def _post_next(self, channel: tuple[str, str], now: float) -> None:
        """The channel's next thread to tell (DrainWatch.pick) gets its notice; threads no longer waiting are
        dropped."""
        while pending := self._due.get(channel := self._now(channel)):
            thread_ts = self._drain.pick(channel, pending, now)
            since = pending.pop(thread_ts)
            thread = (*channel, thread_ts)
            self._posting[thread] = False
            try:
                shown, stop = await self._post_one(channel, thread, since, now)
            finally:
                again = self._posting.pop(thread := self._now(thread))  # its channel's id may have changed
                began = thread in self._began
                self._began.discard(thread)
            if shown is not None and shown.thread != thread:  # posted under the old id: kept under the new
                await self._stored(self._rows.drop(shown.thread, shown.ts))
                shown.thread = thread
                await self._stored(self._rows.put(NoticeRow(thread, shown.ts, shown.where, shown.shown)))
            if shown is not None:
                ending = self._ending.pop(thread, None)
                shown.ended = ending.words if ending is not None else None
                if again or shown.ended:
                    shown.checked_at = 0.0  # a mention arrived, or ended, while it was posted: looked at first
                shown.answered = began  # its turn went to its agents while it was posted: left as it is
                self._shown[thread] = shown
            elif again or thread_ts in self._due.get(thread[:2], {}):
                # a mention arrived while it was looked at, or it is told later: looked at again
                self._due.setdefault(thread[:2], {})[thread_ts] = since
            elif (ending := self._ending.pop(thread, None)) is not None and ending.say:  # the stop counted on it
                if not await self._shown_elsewhere(thread):  # not said where another process's notice says it
                    await self._slack.say(thread, ending.words, since)
                    self._pacing.spend(thread[:2], now)  # a post in the channel as the notice was: the round ends
                    stop = True
            if stop:
                break
        if channel in self._due and not self._due[channel]:
            del self._due[channel]
            self._drain.forget(channel)

    async def _post_one(
        self, channel: tuple[str, str], thread: ThreadKey, since: str, now: float
    ) -> tuple[Notice | None, bool]:
        """The thread's notice, if it waits (None when it does not, or the post failed), posted after the mention
        `since`; True when the round for the channel is over (a notice was posted, or Slack refused one)."""
        where, ahead = await self._lookups.count(thread, None)
        if not ahead:
            return None, False
        if self._drain.too_late(channel, where, ahead, now):  # its turn comes before a notice is of use
            self._due.setdefault(channel, {})[thread[2]] = since
            self._pacing.spend(channel, now)
            return None, True
        approval = await self._lookups.approval(thread, where)
        try:
            ts = await self._slack.post(thread, queued_text(ahead, where, approval, is_direct(thread[1])), since)
        except Exception as exc:
            log.info("could not say the turn is queued channel=%s error=%s", channel[1], type(exc).__name__)
            return None, True
        finally:
            self._pacing.spend(channel, now)
        await self._stored(self._rows.put(NoticeRow(thread, ts, where, ahead)))
        return Notice(thread, ts, where, ahead, now, now, approval), True

    async def _refresh(self, now: float) -> None:
        """Look up the counts of the notices looked at least recently; edit the first that is worth it."""
        due = sorted(
            (n for n in self._shown.values() if now - n.edited_at >= NOTICE_SPACING), key=lambda n: n.checked_at
        )
        for notice in due[:CHECKS_PER_ROUND]:
            notice.checked_at, thread = now, notice.thread
            where, ahead = await self._lookups.count(notice.thread, notice.where)
            if notice.thread != thread:  # its channel's id changed meanwhile: counted under the old one
                notice.checked_at = 0.0
                continue
            if not ahead:
                if notice.thread in self._taking and not notice.answered:
                    continue  # its turn may still end unrun (its channel disconnected): looked at again
                if self._lookups.behind_move(notice.thread, where) and not notice.answered and notice.ended is None:
                    continue  # it waits for a turn running under its channel's old id, which is not counted
                del self._shown[notice.thread]
                # Unless the thread's turn went to its agents (the notice said what happened), what it promised
                # will not come (taken back here, or through another process): it says so.
                ended = None if notice.answered else notice.ended or await self._lookups.ended_unrun(notice.thread)
                if ended is not None:
                    await self._edit(notice, ended, now)
                await self._stored(self._rows.drop(notice.thread, notice.ts))
                if ended is None:
                    continue
                return
            approval = await self._lookups.approval(notice.thread, where)
            if approval == notice.approval and not worth_editing(notice.shown, ahead, now - notice.edited_at):
                continue
            notice.shown, notice.approval = ahead, approval
            if await self._edit(notice, queued_text(ahead, where, approval, is_direct(notice.thread[1])), now):
                await self._stored(self._rows.shown(NoticeRow(notice.thread, notice.ts, where, ahead)))
            else:
                del self._shown[notice.thread]
                await self._stored(self._rows.drop(notice.thread, notice.ts))
            return

    @staticmethod
    async def _stored(write: Awaitable[None]) -> None:
        """A write of the notices' rows: one that fails loses only what the next start would have known."""
        try:
            await write
        except Exception as exc:
            log.info("could not store a queue notice error=%s", type(exc).__name__)

    async def _edit(self, notice: Notice, words: str, now: float) -> bool:
        """Edit the notice to say `words`; False when Slack refused (it is not edited again)."""
        self._next_edit = now + EDIT_SPACING
        notice.edited_at = now
        return await self._slack.edit(notice.thread, notice.ts, words)
