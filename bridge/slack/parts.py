"""What the bridge posts is made of: a message's part (its text, name, icon, blocks), who it is posted as, an
agent's look; and the part without its blocks, for when Slack refuses them. Apart from `post.py`, which posts
them, so that each stays small."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.slack.feedback import with_actions
from bridge.slack.render import MAX_TEXT


@dataclass(frozen=True)
class Part:
    text: str
    username: str | None
    icon_emoji: str | None = None
    icon_url: str | None = None
    blocks: tuple[dict[str, Any], ...] = ()
    actions: tuple[dict[str, Any], ...] = ()  # blocks after the text (feedback buttons): the text goes in sections

    def all_blocks(self) -> list[dict[str, Any]] | None:
        return list(self.blocks) or with_actions(self.text, self.actions)


@dataclass(frozen=True)
class Author:
    """Who a message is posted as: the agent's name and icon, or the app itself (all None)."""

    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None


@dataclass(frozen=True)
class Look:
    """An agent's display name and icon in Slack, from config; the agent's own name when unset."""

    display_name: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None


def dispensable(part: Part) -> bool:
    """Whether a part says all it must without its blocks: a reply's text without its feedback buttons, notes as
    lines; never an approval card, whose buttons are the point of it."""
    if part.actions:
        return True
    return bool(part.blocks) and all(block.get("type") == "context" for block in part.blocks)


def plain(part: Part) -> Part:
    """A part without its blocks, for when Slack refuses them: a reply's text without its feedback buttons, or
    notes' lines (their context blocks' texts) as long as one message holds, the rest counted."""
    if not part.blocks:
        return Part(part.text, part.username, part.icon_emoji, part.icon_url)
    lines = [
        str(element.get("text", ""))
        for block in part.blocks
        for element in block.get("elements", [])
        if element.get("type") == "mrkdwn"
    ]
    kept: list[str] = []
    room = MAX_TEXT - len(f"… and {len(lines)} more")
    for n, line in enumerate(lines):
        room -= len(line) + 1
        if room < 0:
            kept.append(f"… and {len(lines) - n} more")
            break
        kept.append(line)
    return Part("\n".join(kept) or part.text, part.username, part.icon_emoji, part.icon_url)
