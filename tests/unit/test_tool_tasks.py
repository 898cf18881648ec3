"""Pure: tool calls read as ToolProgress (REST captures §20, App Server events) and shown as Slack task chunks and
cards; the fake Slack's chunk checks refuse what Slack would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.domain import ToolProgress
from bridge.letta.appserver import ToolCalled, ToolDenied, ToolReturned, ToolStarted
from bridge.letta.appserver_runner import tool_progress
from bridge.letta.stream import MESSAGE
from bridge.letta.toolprogress import ToolWatch
from bridge.slack.tasks import task_card, task_chunk
from tests.fakes.slack_stream import check_chunks, task_card_error
from tests.reference import LETTA


def _events(name: str) -> list[Any]:
    record = json.loads((LETTA / "0.16.8" / f"{name}.json").read_text())
    return [MESSAGE.validate_python(e["data"]) for e in record["response"]["events"] if isinstance(e["data"], dict)]


@pytest.mark.parametrize("name", ["agents-stream-tokens-two-tools", "conversations-stream-tokens-two-tools"])
def test_a_real_token_stream_moves_each_tool_call_from_pending_to_its_end(name: str) -> None:
    watch = ToolWatch()
    moves = [move for message in _events(name) for move in watch.add(message, getattr(message, "name", None) or "tia")]
    assert [(who, p.name, p.state) for who, p in moves] == [
        ("tia", "shout", "pending"),
        ("tia", "shout", "running"),
        ("tia", "shout", "done"),
        ("tia", "explode", "pending"),
        ("tia", "explode", "running"),
        ("tia", "explode", "failed"),
    ]
    assert len({p.call_id for _, p in moves[:3]}) == 1 and moves[0][1].call_id != moves[3][1].call_id
    assert moves[1][1].args == '{"message": "ok"}' and moves[2][1].output == ""
    assert moves[5][1].output.startswith("Error executing function explode: ValueError:")


def test_the_reply_tool_of_legacy_agents_is_no_task() -> None:
    call = MESSAGE.validate_python(
        {"message_type": "tool_call_message", "id": "m1", "tool_call": {"name": "send_message", "arguments": "{}"}}
    )
    assert ToolWatch().add(call, "alice") == []


def test_app_server_frames_move_a_call_and_a_refusal_ends_it() -> None:
    named: dict[str, ToolCalled] = {}
    moves = [
        tool_progress(ToolCalled("c1", "Bash", '{"command": "echo hi"}'), named),
        tool_progress(ToolStarted("c1"), named),
        tool_progress(ToolReturned("c1", "success", "hi"), named),
        tool_progress(ToolCalled("c2", "Write", "{}"), named),
        tool_progress(ToolDenied("c2", "Write", "not from Slack"), named),
        tool_progress(ToolStarted("unknown"), named),
    ]
    assert [(m.name, m.state) if m else None for m in moves] == [
        ("Bash", "pending"),
        ("Bash", "running"),
        ("Bash", "done"),
        ("Write", "pending"),
        ("Write", "failed"),
        None,
    ]
    assert moves[4] is not None and moves[4].output == "not from Slack"


def test_a_task_chunk_is_clipped_escaped_and_shows_details_only_when_asked() -> None:
    progress = ToolProgress("call_1", "search<&>", "x" * 400 + " <!channel>", "failed", "boom @here")
    chunk = task_chunk(progress, details=True)
    assert chunk["type"] == "task_update" and chunk["id"] == "call_1" and chunk["status"] == "error"
    assert chunk["title"] == "search&lt;&amp;&gt;"
    assert len(chunk["details"]) <= 256 and chunk["details"].endswith("…") and "<" not in chunk["details"]
    assert chunk["output"] == "boom @\u200bhere"  # defused as every text the bridge shows
    assert set(task_chunk(progress, details=False)) == {"type", "id", "title", "status"}
    assert check_chunks([chunk], {}) is None
    card = task_card(chunk)
    assert card["type"] == "task_card" and card["status"] == "error" and task_card_error(card) is None


def test_the_fake_slack_refuses_chunks_slack_would() -> None:
    ok = {"type": "task_update", "id": "t1", "title": "shout", "status": "in_progress"}
    known: dict[str, list[dict[str, Any]]] = {}
    assert check_chunks([ok], known) is None
    for bad in (
        {**ok, "status": "running"},  # not one of Slack's four
        {**ok, "id": ""},
        {**ok, "title": "renamed"},  # a task id keeps its task
        {**ok, "status": "pending"},  # back to pending
        {**ok, "details": "x" * 257},
        {**ok, "colour": "red"},
        {"type": "task", "id": "t2"},
    ):
        assert check_chunks([bad], known) == "invalid_chunks", bad
    assert check_chunks([{**ok, "status": "error"}], known) is None
    assert check_chunks([{**ok, "status": "complete"}], known) == "invalid_chunks"  # an ended task stays ended
    assert [u["status"] for u in known["t1"]] == ["in_progress", "error"]
