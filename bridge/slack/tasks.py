"""Pure: an agent's tool call as a task in its streaming message, and as a task card once the reply replaces it.

While the reply streams, a call is a `task_update` chunk (chat.startStream/appendStream/stopStream; slack-sdk 3.48's
`TaskUpdateChunk`: `id`, `title`, `status` pending|in_progress|complete|error, optional `details` and `output` of at
most 256 characters). The id is the call's own, so each update moves the same task. The finished reply is written
over the stream with chat.update, which would drop the tasks: they are kept as `task_card` blocks (Block Kit's task
card: `task_id`, `title`, `status`, `details` and `output` as one rich_text each). Texts are one line, clipped and
escaped as the notes under a reply are; a card's rich_text takes them unescaped.
"""

from __future__ import annotations

from typing import Any, Literal

from bridge.domain import ToolProgress, ToolState
from bridge.slack.links import unescape
from bridge.slack.markdown import escape_within

TaskDisplay = Literal["timeline", "plan", "off"]
STATUS: dict[ToolState, str] = {"pending": "pending", "running": "in_progress", "done": "complete", "failed": "error"}
FINAL = ("complete", "error")
TASK_CHARS = 256
MAX_BLOCKS = 50  # blocks in one message


def _text(text: str) -> str:
    return escape_within(" ".join(text.split()), TASK_CHARS)


def task_chunk(progress: ToolProgress, details: bool) -> dict[str, Any]:
    """The `task_update` chunk of one tool call's state; its arguments and failure only with `details` (the
    channel shows reasoning)."""
    chunk: dict[str, Any] = {
        "type": "task_update",
        "id": progress.call_id or "tool",
        "title": _text(progress.name) or "tool",
        "status": STATUS[progress.state],
    }
    if details and progress.args:
        chunk["details"] = _text(progress.args)
    if details and progress.output:
        chunk["output"] = _text(progress.output)
    return chunk


def _rich(text: str) -> dict[str, Any]:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return {"type": "rich_text", "elements": [section]}


def task_card(chunk: dict[str, Any]) -> dict[str, Any]:
    """A task's last chunk as the task card block that keeps it in the finished message."""
    card: dict[str, Any] = {"type": "task_card", "task_id": chunk["id"], "title": chunk["title"]}
    card["status"] = chunk["status"]
    for field in ("details", "output"):
        if chunk.get(field):
            # rich_text carries characters as they are: the chunk's entities (&amp; &lt; &gt;) would show.
            card[field] = _rich(unescape(chunk[field]))
    return card


def task_cards(chunks: list[dict[str, Any]], room: int) -> list[dict[str, Any]]:
    """The cards of a reply's tasks in at most `room` blocks (what the reply's text and buttons leave of a message's
    50): past that, the rest counted in one line, or the reply could not replace its draft."""
    cards = [task_card(chunk) for chunk in chunks]
    if len(cards) <= room:
        return cards
    shown = cards[: max(room - 1, 0)]
    more = {"type": "mrkdwn", "text": f"… and {len(cards) - len(shown)} more tool calls"}
    return [*shown, {"type": "context", "elements": [more]}]
