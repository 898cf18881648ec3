"""When a channel may be posted its next new queue notice, and to which due thread: chat.postMessage allows about
one message a second per channel, short bursts tolerated, so new notices go out at most one every POST_SPACING
seconds past a burst of POST_BURST (a token bucket per channel, forgotten once full); when the backlog drains faster
than that, the threads that will wait longest are told first (DrainWatch)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

POST_SPACING = 1.0  # seconds between two new notices in one channel, past a burst of POST_BURST
POST_BURST = 3
STARTS_KEPT = 4  # a channel's latest turn starts its drain rate is measured over

Channel = tuple[str, str]


class ChannelPacing:
    def __init__(self) -> None:
        self._posts: dict[Channel, tuple[float, float]] = {}  # channel -> (posts allowed, as of when)

    def spend(self, channel: Channel, now: float) -> None:
        """A notice was posted in the channel (or Slack refused one: that counts against its limit too)."""
        allowed, at = self._allowance(channel, now)
        self._posts[channel] = (allowed - 1, at)

    def post_at(self, channel: Channel, now: float) -> float:
        """When the channel may be posted its next notice (`now` when it may be at once)."""
        allowed, _ = self._allowance(channel, now)
        return now if allowed >= 1 else now + (1 - allowed) * POST_SPACING

    def moved(self, old: Channel, new: Channel) -> None:
        """The channel's id changed: its posts so far count under the new one."""
        if old in self._posts:
            self._posts.setdefault(new, self._posts.pop(old))

    def _allowance(self, channel: Channel, now: float) -> tuple[float, float]:
        """How many notices the channel may be posted now (refilled 1/POST_SPACING up to POST_BURST)."""
        allowed, at = self._posts.get(channel, (POST_BURST, now))
        allowed = min(float(POST_BURST), allowed + (now - at) / POST_SPACING)
        if allowed >= POST_BURST:
            self._posts.pop(channel, None)  # a full bucket need not be remembered
        return allowed, now


class DrainWatch:
    """How fast a channel's backlog drains, from the starts of its turns while notices are due there.

    New notices go out about one a second: when turns start faster than that, not every waiting thread can be told,
    and the oldest due thread is always the next to run (its notice would say "1 earlier message" as its answer
    comes). Then the newest due threads, which wait longest, are told first, and one whose turn is expected within
    POST_SPACING is not told at all. Otherwise the oldest is told first: every thread's notice comes in time."""

    def __init__(self) -> None:
        self._starts: dict[Channel, deque[float]] = {}

    def started(self, channel: Channel, now: float) -> None:
        self._starts.setdefault(channel, deque(maxlen=STARTS_KEPT)).append(now)

    def forget(self, channel: Channel) -> None:
        """Nothing is due in the channel any more: how it drained is not needed."""
        self._starts.pop(channel, None)

    def moved(self, old: Channel, new: Channel) -> None:
        if old in self._starts:
            self._starts.setdefault(new, self._starts.pop(old))

    def turn_seconds(self, channel: Channel, now: float) -> float | None:
        """Seconds between the channel's recent turn starts when shorter than POST_SPACING (None otherwise, or when
        the last start is older than a few of them: the backlog may have stalled behind a long turn)."""
        starts = self._starts.get(channel)
        if starts is None or len(starts) < 2:
            return None
        spacing = (starts[-1] - starts[0]) / (len(starts) - 1)
        if spacing >= POST_SPACING or now - starts[-1] > max(3 * spacing, POST_SPACING):
            return None
        return spacing

    def pick(self, channel: Channel, due: Mapping[str, str], now: float) -> str:
        """The due thread to tell next (`due`: thread -> its first waiting mention's ts, oldest first): the one
        whose mention came last when the channel drains faster than notices may go out."""
        if self.turn_seconds(channel, now) is None:
            return next(iter(due))
        return max(due, key=lambda thread_ts: _ts_order(due[thread_ts]))

    def too_late(self, channel: Channel, where: str, ahead: int, now: float) -> bool:
        """Whether a thread with `ahead` turns before it is expected to start before a notice is of use. Never
        where it waits in its thread (threads run at once): the channel's starts, from all its threads, say nothing
        of how fast one thread's own turns go."""
        if where == "thread":
            return False
        seconds = self.turn_seconds(channel, now)
        return seconds is not None and ahead * seconds < POST_SPACING


def _ts_order(ts: str) -> tuple[int, str]:
    """A Slack ts in time order (its whole seconds' digits first, then as text)."""
    return len(ts.partition(".")[0]), ts
