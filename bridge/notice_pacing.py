"""When a channel may be posted its next new queue notice: chat.postMessage allows about one message a second per
channel, short bursts tolerated, so new notices go out at most one every POST_SPACING seconds past a burst of
POST_BURST (a token bucket per channel, forgotten once full)."""

from __future__ import annotations

POST_SPACING = 1.0  # seconds between two new notices in one channel, past a burst of POST_BURST
POST_BURST = 3

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
