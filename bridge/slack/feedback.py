"""Feedback buttons under each agent's final reply (Slack's `feedback_buttons` element in a `context_actions`
block), and reading a press back.

A message with blocks shows its blocks, not its text: the reply's mrkdwn goes in section blocks (3,000
characters each, Slack's limit), the buttons after it. Each button's value names the turn, the reply (its step
key in the turn) and the agent, so that a press is recorded without looking anything up in Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bridge.slack.render import split_mrkdwn

FEEDBACK_ACTION = "letta_feedback"
SECTION_CHARS = 3000  # a section block's text limit
VALUE_CHARS = 2000  # a feedback button's value limit
UP, DOWN = "👍", "👎"
Vote = Literal["up", "down"]


@dataclass(frozen=True)
class Press:
    vote: Vote
    turn_id: int
    reply: str
    agent_name: str


def _value(vote: str, turn_id: int, reply: str, agent_name: str) -> str:
    return f"{vote}|{turn_id}|{reply}|{agent_name}"[:VALUE_CHARS]


def feedback_actions(turn_id: int, reply: str, agent_name: str, shown: str = "") -> tuple[dict[str, Any], ...]:
    """The context_actions block with the two feedback buttons for one agent's reply; a screen reader names the
    agent as the reply shows it (`shown`), the press carries its Letta name."""
    shown = shown or agent_name
    button = {"type": "plain_text", "text": UP}
    return (
        {
            "type": "context_actions",
            "block_id": f"letta_feedback_{turn_id}_{reply}"[:255],
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK_ACTION,
                    "positive_button": {
                        "text": button,
                        "accessibility_label": f"Good reply from {shown}"[:75],
                        "value": _value("up", turn_id, reply, agent_name),
                    },
                    "negative_button": {
                        "text": {"type": "plain_text", "text": DOWN},
                        "accessibility_label": f"Bad reply from {shown}"[:75],
                        "value": _value("down", turn_id, reply, agent_name),
                    },
                }
            ],
        },
    )


def text_blocks(mrkdwn: str) -> list[dict[str, Any]]:
    """A message's mrkdwn as section blocks (a message with blocks shows them instead of its text)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in split_mrkdwn(mrkdwn, SECTION_CHARS)
    ]


def with_actions(mrkdwn: str, actions: tuple[dict[str, Any], ...]) -> list[dict[str, Any]] | None:
    """The blocks of a message whose text is `mrkdwn` followed by `actions`; None without actions."""
    return text_blocks(mrkdwn) + list(actions) if actions else None


def read_press(value: str) -> Press | None:
    """A pressed button's value back; None when it is not one of ours."""
    vote, _, rest = value.partition("|")
    turn, _, rest = rest.partition("|")
    reply, _, agent = rest.partition("|")
    if vote not in ("up", "down") or not turn.isdigit() or not reply or not agent:
        return None
    return Press("up" if vote == "up" else "down", int(turn), reply, agent)
