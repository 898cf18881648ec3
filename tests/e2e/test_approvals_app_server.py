"""Tool approvals on the fake App Server (README §7, captures ws-approval-*): with LETTA_TOOLS on, a tool that is
not read-only asks (`control_request` can_use_tool); the card decides it, the `approval_response` carries the
decision (a deny with the person's reason), the tool runs or not, the agent goes on, the card says who decided."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.approval_rig import ASKER, STRANGER, Rig, open_rig
from tests.fakes.appserver import FakeAppServer


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeAppServer]]:
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        alice = app.add_agent("alice")
        app.set_tools(alice, [("Write", False)])  # not read-only: asks in standard mode
        with open_rig(tmp_path, app, app.url, alice, LETTA_TOOLS="true") as rig:
            yield rig
    finally:
        app.stop()


def answers(app: FakeAppServer) -> list[dict[str, Any]]:
    """Every approval_response the bridge sent."""
    return [f["payload"] for f in app.received
            if isinstance(f, dict) and f.get("type") == "input" and f["payload"].get("kind") == "approval_response"]


def tool_history(app: FakeAppServer) -> list[tuple[str, str, str]]:
    """(type, status, text) of the tool messages in every conversation's history."""
    return [(m["message_type"], m.get("status", ""), m.get("tool_return", ""))
            for conv in app.convs for m in app.history_of(conv) if "tool" in m["message_type"]
            or m["message_type"] == "approval_request_message"]


def test_approve_runs_the_tool_and_the_agent_goes_on(rig: Rig[FakeAppServer]) -> None:
    root = rig.mention("please write the file")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    assert card.args["username"] == "alice" and "`Write`" in json.dumps(card.args["blocks"])
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["suspended"])
    rig.press(card, "letta_approve_tool", STRANGER)  # not the asker: refused, only to them
    rig.slack.wait_for(lambda: rig.told(STRANGER, "Only <@"))
    assert not answers(rig.letta)
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    [answer] = answers(rig.letta)
    assert answer["decision"] == {"behavior": "allow"} and answer["request_id"].startswith("perm-call_fake")
    assert [(kind, status) for kind, status, _ in tool_history(rig.letta)] == [
        ("approval_request_message", ""), ("tool_return_message", "success")]
    assert rig.replies(root["ts"])[-1] == "alice says hi"
    rig.slack.wait_for(lambda: any("Approved by <@U0123ABCD>" in u for u in rig.updates(card)))
    assert rig.slack.session_statuses(rig.channel, root["ts"])[-2:] == ["processing", "active"]


def test_deny_sends_the_reason_and_the_tool_does_not_run(rig: Rig[FakeAppServer]) -> None:
    root = rig.mention("please write the file")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.deny(card, "not on a Friday")
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    [answer] = answers(rig.letta)
    assert answer["decision"] == {"behavior": "deny", "message": "not on a Friday"}
    assert tool_history(rig.letta)[-1] == ("tool_return_message", "error", "not on a Friday")
    assert rig.replies(root["ts"])[-1] == "alice says hi"
    rig.slack.wait_for(lambda: any("Denied by <@U0123ABCD>" in u and "not on a Friday" in u for u in rig.updates(card)))
