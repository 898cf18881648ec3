"""Pure: tool calls read as ToolProgress (REST captures §20, App Server events) and shown as Slack task chunks and
cards; the fake Slack's chunk checks refuse what Slack would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from bridge.domain import AgentRef, ApprovalRequest, Decision, ToolProgress, TurnInput
from bridge.letta.appserver import ToolCalled, ToolDenied, ToolReturned, ToolStarted
from bridge.letta.appserver_runner import tool_progress
from bridge.letta.client import LettaClient
from bridge.letta.rest_send import RestSend
from bridge.letta.stream import MESSAGE
from bridge.letta.toolprogress import ToolWatch
from bridge.slack.tasks import task_card, task_chunk
from tests.fakes.slack_stream import check_chunks, task_card_error
from tests.reference import LETTA, parallel_calls_unstreamed


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


def test_parallel_calls_answered_in_one_message_each_end() -> None:
    """revZ, real 0.16.8 with parallel_tool_calls: one model answer calls shout and whisper, and ONE
    tool_return_message answers both (its top level is shout's, `tool_returns` lists both). Before, whisper's task
    stayed running after the reply had finished."""
    watch = ToolWatch()
    events = _events("parallel-tools-no-approval-send-stream-tokens")
    moves = [move for message in events for move in watch.add(message, getattr(message, "name", None) or "pia")]
    ends = {p.name: p.state for _, p in moves if p.state in ("done", "failed")}
    assert ends == {"shout": "done", "whisper": "done"}, moves


def test_parallel_calls_given_in_one_message_each_run_and_end() -> None:
    """revBO: without token streaming 0.16.8 gives both calls in ONE tool_call_message, `tool_call` only the
    first. Before, whisper never showed as a task."""
    watch = ToolWatch()
    moves = [move for frame in parallel_calls_unstreamed() for move in watch.add(MESSAGE.validate_python(frame), "pia")]
    assert [(p.name, p.state) for _, p in moves] == [
        ("shout", "running"),
        ("whisper", "running"),
        ("shout", "done"),
        ("whisper", "done"),
    ], moves


class _Captured:
    """A Letta client whose agent route answers each send with the next capture's events, as real 0.16.8 did."""

    def __init__(self, *names: str) -> None:
        self.no_stream_route: set[str] = set()
        self._answers = [_events(name) for name in names]
        self.sent: list[dict[str, Any]] = []

    async def stream_agent(self, agent_id: str, message: dict[str, Any], tokens: bool = False) -> AsyncIterator[Any]:
        self.sent.append(message)
        for event in self._answers.pop(0):
            yield event


class _Shown:
    """The turn's drafts and approval cards: every tool move shown, every call approved."""

    def __init__(self) -> None:
        self.moves: list[ToolProgress] = []
        self.stopped = False

    async def grow(self, step: str, index: int, agent_name: str, text: str) -> None:
        pass

    async def tool(self, step: str, index: int, agent_name: str, progress: ToolProgress) -> None:
        self.moves.append(progress)

    async def shown_before(self, step: str, index: int) -> bool:
        return False

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        return tuple(Decision(call.tool_call_id, True) for call in request.calls)

    async def sending(self, request: ApprovalRequest) -> None:
        pass

    async def settled(self, request: ApprovalRequest, refused: str | None = None) -> None:
        pass

    async def resumed(self, step: str) -> None:
        return None


def test_a_call_made_beside_one_waiting_for_approval_ends_with_the_decisions_answer() -> None:
    """revZ, real 0.16.8: shout needs approval, whisper (in the same model answer) does not; both run once the
    decision is sent, and their results come in the decision's answer. Before, that answer was read with a watch
    of its own, which had never seen whisper's call: its task stayed running after the reply had finished."""
    client = _Captured("parallel-tools-one-approval-send-stream-tokens", "parallel-tools-one-approval-approve")
    shown = _Shown()
    turn = TurnInput("please use tools shout whisper", "otid-1", "maria", drafts=shown, approvals=shown)
    send = RestSend(cast(LettaClient, client), streaming=True, tokens=True)
    heard = asyncio.run(send.said(AgentRef("agent-1", "pia"), "step-1", {"otid": "otid-1"}, None, turn))
    assert client.sent[1]["type"] == "approval" and len(client.sent[1]["approvals"]) == 1  # shout's decision
    assert heard.failure is None
    ends = {p.name: p.state for p in shown.moves if p.state in ("done", "failed")}
    assert ends == {"whisper": "done"}, shown.moves  # shout's progress is its approval card's
