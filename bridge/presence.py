"""The fallback signs that a turn is working, shown only once it has worked a while.

Where Slack's agent sessions are refused, a turn shows it is working by a reaction on the asking message, the
thread's status line ("alice is thinking...") and an ephemeral Stop button. A turn whose agents answer within
`SLACK_WORKING_AFTER_SECONDS` shows none of them: its replies say it was heard, and the three calls (and the two
that take them back) would be most of a fast turn's Slack traffic, made before its first Letta send.

The signs are best effort, within a budget (`SignBudget`): a burst of slow turns (a start-up after an outage,
an overloaded bridge) would otherwise fire them all at once, competing with Slack's acknowledgements for the
event loop and running into Slack's rate limits (reactions are Tier 3, about 50 a minute). A turn whose signs
find the budget spent shows none; it still gets its replies and its done reaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bridge.domain import Turn
from bridge.slack.post import SlackPoster
from bridge.slack.sessions import Sessions
from bridge.word_lists import and_list


def thinking(names: list[str]) -> str:
    """The status line for the agents a turn asks."""
    if not names:
        return "thinking..."
    return f"{and_list(names)} {'is' if len(names) == 1 else 'are'} thinking..."


class SignBudget:
    """A token bucket: `burst` turns' signs at once, then `per_second` more each second."""

    def __init__(self, burst: int = 10, per_second: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst, self._rate, self._clock = float(burst), per_second, clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Presence:
    """One turn's working signs: `start` schedules them `after` seconds on, `end` cancels them if they were not
    begun, else waits for them and takes back what they put up (the reaction, the status line)."""

    def __init__(
        self,
        poster: SlackPoster,
        sessions: Sessions,
        channel: str,
        thread_ts: str,
        message_ts: str,
        user: str,
        reaction: str,
        after: float,
        budget: SignBudget | None = None,
        resumed: bool = False,
    ) -> None:
        self._poster, self._sessions = poster, sessions
        self._channel, self._thread_ts, self._message_ts, self._user = channel, thread_ts, message_ts, user
        self._reaction, self._after = reaction, after
        self._budget = budget
        self._resumed = resumed  # an earlier run of the turn may have put signs up: they are taken back anyway
        self._task: asyncio.Task[None] | None = None
        self.shown = False  # set as the first sign goes out: from then on they are taken back at the end

    def start(self, names: list[str]) -> None:
        self._task = asyncio.create_task(self._show(names))

    async def _show(self, names: list[str]) -> None:
        if self._after > 0:
            await asyncio.sleep(self._after)
        if self._budget is not None and not self._budget.take():
            return  # spent: this turn shows no signs (and takes none back)
        self.shown = True
        await self._poster.react(self._channel, self._message_ts, self._reaction)
        await self._sessions.offer_stop(self._channel, self._thread_ts, self._user)
        await self._poster.status(self._channel, self._thread_ts, thinking(names))

    async def end(self) -> None:
        """Called once, when the turn is over (or cancelled: then the signs are only abandoned)."""
        task, self._task = self._task, None
        if task is not None and not self.shown:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif task is not None:
            with contextlib.suppress(Exception):  # each sign's call logs its own failure
                await asyncio.shield(task)  # signs half put up are finished, so each can be taken back
        if self.shown or self._resumed:
            await self._poster.unreact(self._channel, self._message_ts, self._reaction)
            await self._poster.status(self._channel, self._thread_ts, "")

    def abandon(self) -> None:
        """The turn is cancelled (the bridge is stopping): nothing more is sent for it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def take_back(poster: SlackPoster, sessions: Sessions, turn: Turn, reaction: str) -> bool:
    """What a run of the turn in a process gone since showed as working, taken back by one that never showed it:
    the session set `active`, or where there is none, the reaction and the status line. True when a session."""
    if await sessions.set(turn.channel_id, turn.thread_ts, "active", attempts=3):
        return True
    signs = Presence(
        poster, sessions, turn.channel_id, turn.thread_ts, turn.message_ts, turn.user_id, reaction, 0, resumed=True
    )
    await signs.end()  # never started here: takes back what the earlier run may have put up
    return False
