"""revBU: a task card's details/output are rich_text, whose text elements carry raw characters (reference/slack/
events/app_mention.json: `&lt;prod&gt; &amp; staging` in mrkdwn `text`, `<prod> & staging` in its rich_text)."""

from __future__ import annotations

from bridge.domain import ToolProgress
from bridge.slack.tasks import task_card, task_chunk


def _rich_text(block: dict) -> str:
    return "".join(e["text"] for s in block["elements"] for e in s["elements"])


def test_a_task_card_shows_a_tool_calls_arguments_as_written() -> None:
    progress = ToolProgress("call_1", "web_search", '{"query": "AT&T Q3 <earnings>"}', "failed", "status 5 > 4")
    card = task_card(task_chunk(progress, details=True))
    assert _rich_text(card["details"]) == '{"query": "AT&T Q3 <earnings>"}'
    assert _rich_text(card["output"]) == "status 5 > 4"
