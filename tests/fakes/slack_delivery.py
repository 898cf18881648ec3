"""Which events Slack sends an app at all: its manifest's `bot_events` and the scopes its token was granted.

Slack's documented rules (docs.slack.dev/reference/events/message.channels, message.groups, message.im,
message.mpim, app_mention): a `message` event goes out under the subscription its conversation's kind names
(the event's `channel_type`: channel, group, im, mpim), and only with that kind's `*:history` scope; an
`app_mention` needs `app_mentions:read` and comes from every conversation the bot is in but a DM with it.
A fake that posted every event to the bridge would hide a manifest that never asks for one.
"""

from __future__ import annotations

import re
from typing import Any

# A message's `channel_type` -> the bot event that delivers it and the scope that event needs.
MESSAGE_EVENTS: dict[str, tuple[str, str]] = {
    "channel": ("message.channels", "channels:history"),
    "group": ("message.groups", "groups:history"),
    "im": ("message.im", "im:history"),
    "mpim": ("message.mpim", "mpim:history"),
}


def bot_events(manifest_text: str) -> set[str]:
    """The event names listed under `settings.event_subscriptions.bot_events` of a manifest's YAML."""
    found = re.search(r"^ +bot_events:\n((?: +- .*\n)+)", manifest_text, re.MULTILINE)
    if found is None:
        return set()
    return {line.split("- ", 1)[1].split("#", 1)[0].strip() for line in found.group(1).splitlines()}


def delivered(event: dict[str, Any], events: set[str], scopes: str) -> bool:
    """Whether Slack sends `event` to an app subscribed to `events` whose token has `scopes` (comma-separated)."""
    granted = {s.strip() for s in scopes.split(",")}
    if event.get("type") == "app_mention":
        return "app_mention" in events and "app_mentions:read" in granted
    if event.get("type") == "message":
        name, scope = MESSAGE_EVENTS[str(event.get("channel_type"))]
        return name in events and scope in granted
    raise ValueError(f"no delivery rule for {event.get('type')!r}")
