"""One turn's growing replies: the runners' drafts shown in the thread, throttled, and recorded in the store.

A draft's message ts is recorded as soon as Slack gives it, so the finished reply replaces that message (here
or, after a restart, in the next process) instead of being posted beside it: nothing is posted twice.
A resumed turn whose reply grows again (its send re-attached or made anew) grows it in the draft the earlier run
recorded, never in a second one; a draft of the earlier run that no reply replaces is closed when the turn ends.
Only the turn's own drafts are touched: another turn's, maybe running in another process, never are.
Where drafts are Slack streams, the reply's tool calls show in it as tasks, as they happen (a first tool call
opens the stream before any text).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bridge.domain import ToolProgress, Turn
from bridge.slack.live import MORE, Draft, LiveMessages
from bridge.slack.post import Author, SlackPoster
from bridge.slack.tasks import task_chunk
from bridge.store.base import Store

log = logging.getLogger(__name__)


CUT_OFF = " _(cut off)_"
RETRY_SKIPPED = 0.2  # seconds before a draft whose edit waited for another draft's tries again
OPEN_WAIT = 10.0  # seconds a stopped turn waits for the stream Slack was opening, to close it


def live_key(step: str, index: int) -> str:
    return f"{step}:{index}"


@dataclass
class _Growing:
    draft: Draft
    agent_name: str
    shown_at: float
    text: str = ""


class TurnDrafts:
    """The `Drafts` of one turn (see domain.Drafts)."""

    def __init__(
        self,
        store: Store,
        poster: SlackPoster,
        live: LiveMessages,
        turn: Turn,
        turn_id: int,
        interval: float,
        resumed: bool = False,
        details: bool = False,
        before_new: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # A new draft is a new message in the thread: what the turn owes before it is posted first (post_order.py).
        self._before_new = before_new
        self._details = details  # a task shows the call's arguments and failure (where reasoning is shown)
        self._resumed = resumed  # only a turn run before can have a draft this run does not know of
        self._poster = poster
        self._live = live
        self._turn = turn
        self._turn_id = turn_id
        self._interval = interval
        self._growing: dict[str, _Growing] = {}
        self._tried: dict[str, float] = {}  # drafts Slack refused to open: when, so as not to ask at every token
        self._done: set[str] = set()
        # Tool calls of a reply whose stream is not open yet (Slack's Retry-After ran, or Slack refused it): each
        # call's latest chunk by id, all of them opening the stream, or the first call would show nowhere.
        self._unopened: dict[str, dict[str, dict[str, Any]]] = {}
        self._earlier: dict[str, str | None] = {}  # a resumed turn's drafts recorded by its earlier run, by key

    async def grow(self, step: str, index: int, agent_name: str, text: str) -> None:
        key = live_key(step, index)
        if key in self._done:
            return
        now = asyncio.get_running_loop().time()
        growing = self._growing.get(key)
        if growing is None:
            if now - self._tried.get(key, -self._interval) < self._interval:
                return
            self._tried[key] = now
            shown, markdown = self._shown(agent_name, text)  # rendered only when shown: drafts come per token
            await self._start(key, agent_name, text, shown, markdown)
            return
        growing.text = text
        if now - growing.shown_at < self._interval:
            return
        grown = await self._live.grow(growing.draft, *self._shown(agent_name, text))
        # Not shown (another draft had the workspace's last edit): tried again soon, not after a whole interval.
        growing.shown_at = now if grown else now - self._interval + RETRY_SKIPPED

    async def tool(self, step: str, index: int, agent_name: str, progress: ToolProgress) -> None:
        """A tool call of the reply as a task of its stream; nothing where drafts are not streams."""
        key = live_key(step, index)
        if key in self._done or self._live.tasks == "off" or not self._live.streams:
            return
        chunk = task_chunk(progress, self._details)
        growing = self._growing.get(key)
        if growing is None:
            self._unopened.setdefault(key, {})[chunk["id"]] = chunk
            await self._start(key, agent_name, "", "", "")
        else:
            await self._live.task(growing.draft, chunk)

    async def shown_before(self, step: str, index: int) -> bool:
        return await self._earlier_draft(live_key(step, index)) is not None

    def showed_tasks(self, step_key: str) -> bool:
        """Whether the reply's draft shows its tool calls as tasks (then they are not repeated as notes)."""
        growing = self._growing.get(step_key)
        return growing is not None and bool(growing.draft.tasks)

    async def _start(self, key: str, agent_name: str, text: str, shown: str, markdown: str) -> None:
        turn = self._turn
        earlier = await self._earlier_draft(key)
        if earlier is not None:
            draft = await self._live.adopt(turn.channel_id, earlier)
            if draft is None:
                return
            if shown:
                await self._live.grow(draft, shown, markdown)
        else:
            if self._before_new is not None:
                await self._before_new()
            author = self._poster.author(agent_name)
            recipient = (turn.team_id, turn.user_id)
            tasks = tuple(self._unopened.get(key, {}).values())
            opening = asyncio.ensure_future(self._open(key, agent_name, shown, markdown, author, recipient, tasks))
            try:
                draft = await asyncio.shield(opening)
            except asyncio.CancelledError:
                # A stop (or the deadline) while Slack was opening the stream: the stream it opens is the turn's
                # to close, marked, or it would stay in the thread streaming for good.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    async with asyncio.timeout(OPEN_WAIT):
                        opened = await asyncio.shield(opening)
                        if opened is not None:
                            self._growing[key] = _Growing(opened, agent_name, asyncio.get_running_loop().time(), text)
                raise
            if draft is None:
                return
        self._unopened.pop(key, None)  # in the stream now, or the draft shows no tasks and the reply's notes say them
        self._growing[key] = _Growing(draft, agent_name, asyncio.get_running_loop().time(), text)

    async def _open(
        self, key: str, agent_name: str, shown: str, markdown: str, author: Author, recipient: tuple[str, str],
        tasks: tuple[dict[str, Any], ...],
    ) -> Draft | None:
        """A new draft, recorded as the reply's before it grows (a restarted bridge writes the reply over it)."""
        turn = self._turn
        draft = await self._live.start(turn.channel_id, turn.thread_ts, shown, markdown, author, recipient, tasks)
        if draft is not None:
            self._poster.landed(turn.channel_id)
            await self._store.live_started(self._turn_id, key, agent_name, draft.ts)
        return draft

    async def _earlier_draft(self, key: str) -> str | None:
        """The ts of the draft an earlier run of this turn recorded for the reply; a fresh turn has none."""
        if not self._resumed:
            return None
        if key not in self._earlier:
            self._earlier[key] = await self._store.live_ts(self._turn_id, key)
        return self._earlier[key]

    async def replace(self, step_key: str, text: str, actions: tuple[dict[str, Any], ...] = ()) -> str | None:
        """Write a finished reply's first message over its draft; its ts, or None when there is no draft
        or it cannot be edited (the reply is then posted anew)."""
        self._done.add(step_key)
        self._unopened.pop(step_key, None)
        growing = self._growing.pop(step_key, None)
        draft = growing.draft if growing is not None else None
        if draft is not None:
            ts, streaming = draft.ts, draft.streaming
        elif not self._resumed:
            return None
        else:
            found = await self._store.live_ts(self._turn_id, step_key)
            if found is None:
                return None
            ts, streaming = found, None
        ok = await self._live.replace_with(self._turn.channel_id, ts, text, streaming, actions, draft)
        return ts if ok else None

    async def abandon(self, mark: str = CUT_OFF, finished: bool = False) -> bool:
        """The turn ended with drafts that never became replies (a deadline, a crash, a stop): mark them (cut
        off, stopped by someone). A turn that `finished` leaves no mark on a draft of only tool calls: the agent
        ran them and said nothing, nothing was cut off. Whether there was any."""
        had = bool(self._growing)
        for key, growing in list(self._growing.items()):
            self._done.add(key)
            shown, _ = self._shown(growing.agent_name, growing.text)
            draft = growing.draft
            end = "" if finished and not shown and draft.tasks else mark
            await self._live.replace_with(self._turn.channel_id, draft.ts, shown + end, draft.streaming, (), draft)
        self._growing.clear()
        if self._resumed:
            await self._close_earlier()
        return had

    async def _close_earlier(self) -> None:
        """Stop the streams the earlier run of this turn left that no reply of the turn was written over (its
        send answered nothing, failed, or was stopped): they would stay in the thread, never finished. A reply
        still owed is written over its draft afterwards all the same."""
        for key, ts in await self._store.live_unreplaced(self._turn_id):
            if key not in self._done:
                self._done.add(key)
                await self._live.close(self._turn.channel_id, ts, CUT_OFF)

    def _shown(self, agent_name: str, text: str) -> tuple[str, str]:
        """(mrkdwn for chat.update, Markdown for a stream) of a draft: its first message's worth, named in
        the text when Slack refuses custom usernames."""
        parts = self._poster.parts(agent_name, text)
        shown = parts[0].text if parts else ""
        if len(parts) > 1:
            shown += MORE
        username = self._poster.author(agent_name).username
        return shown, text if username else f"**{self._poster.shown_name(agent_name)}**: {text}"
