"""What a queue notice says, looked up: how many turns are ahead of a waiting thread (and where it waits), whether
a tool call ahead waits for a decision, and how a mention ended unrun through another process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from bridge.notice_words import STOPPED_NOTICE, TAKEN_BACK, Pending
from bridge.slack.post import SlackPoster
from bridge.store.approvals import ApprovalStore
from bridge.store.base import Store, ThreadKey

InParallel = Callable[[str, str], Awaitable[bool]]
# The threads with a turn still running under the channel's old id (its id changed meanwhile); None when none is.
Moving = Callable[[str, str], Collection[str] | None]


class NoticeLookups:
    def __init__(
        self,
        store: Store,
        poster_of: Callable[[str], Awaitable[SlackPoster]],
        in_parallel: InParallel,
        set_aside: Callable[[], Collection[int]],
        moving: Moving,
    ) -> None:
        self._store = store
        self._approvals = ApprovalStore(store)
        self._poster_of = poster_of
        self._in_parallel = in_parallel
        self._set_aside = set_aside  # turns left for the next start (their runs kept failing): nothing waits on them
        self._moving = moving  # a turn ahead runs under the channel's old id: not counted under the new one

    async def ended_unrun(self, thread: ThreadKey) -> str | None:
        """The words for a thread whose newest mention will not be answered after all: stopped, deleted or edited
        away through another process (Postgres), which told its own notices only. None when it was taken to be
        answered."""
        newest = await self._store.last_turn_in_thread(*thread)
        ended = await self._store.unrun_end(newest) if newest else None  # one that ran kept the notice's word
        if ended is None:
            return None
        return STOPPED_NOTICE if ended == "stopped" else TAKEN_BACK[ended][1]

    async def approval(self, thread: ThreadKey, where: str) -> Pending | None:
        """A tool call waiting for a decision where the thread waits (its thread, or its channel)."""
        team_id, channel_id, thread_ts = thread
        rows = await self._approvals.open_in(team_id, channel_id, thread_ts if where == "thread" else "")
        waiting = [row for row in rows if not row.decided]
        if not waiting:
            return None
        asked = waiting[0].asked
        try:  # named as its replies show it
            agent = (await self._poster_of(team_id)).shown_name(asked.agent_name)
        except Exception:  # the workspace's poster is gone (uninstalled): the notice is not posted either
            agent = asked.agent_name
        return Pending(agent, asked.tool_name)

    async def count(self, thread: ThreadKey, where: str | None) -> tuple[str, int]:
        """Where the thread waits ("channel", or "thread" where a binding's threads run at once) and how many
        turns are ahead of its newest waiting one."""
        team_id, channel_id, thread_ts = thread
        aside = self._set_aside()
        if where is None:
            ahead = await self._store.turns_ahead(team_id, channel_id, thread_ts, in_thread=False, skip=aside)
            if not ahead:
                return "channel", 0  # the usual case, settled without asking how the binding's threads run
            if not await self._in_parallel(team_id, channel_id):
                return "channel", ahead + self.behind_move(thread, "channel")
            where = "thread"
        in_thread = where == "thread"
        ahead = await self._store.turns_ahead(team_id, channel_id, thread_ts, in_thread, skip=aside)
        return where, ahead + (ahead > 0 and self.behind_move(thread, where))

    def behind_move(self, thread: ThreadKey, where: str) -> bool:
        """Whether a turn ahead of the thread's still runs under its channel's old id (not counted under the new)."""
        held = self._moving(*thread[:2])
        return held is not None and (where == "channel" or thread[2] in held)
