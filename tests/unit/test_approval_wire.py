"""Tool approvals on Letta's wire, read from and written as the captures show (reference/letta/README.md section 17,
app-server/README.md section 7)."""

from __future__ import annotations

import json

from bridge.domain import Decision, ToolCall
from bridge.letta.appserver import wire
from bridge.letta.appserver.turn import question
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked, Questions, asked
from bridge.letta.models import MESSAGE_LIST, LettaResponse, parse_error
from bridge.letta.recovery import replies_after
from bridge.letta.wire import approval_message
from tests.reference import APP_SERVER, LETTA, load

V = LETTA / "0.16.8"


def test_a_turn_that_stops_for_approval_asks_about_its_tool_call() -> None:
    response = LettaResponse.model_validate(load(V / "approval-send.json")["response"]["body"])
    assert response.stop_reason is not None and response.stop_reason.stop_reason == "requires_approval"
    questions = [q for q in map(asked, response.messages) if q is not None]
    call = ToolCall("call_fake41", "shout", '{"message": "finn says hi"}')
    assert questions == [Asked("message-a8ef88f3-d4df-427f-8d3c-610355d285e2", (call,))]


def test_the_decisions_are_the_captured_approval_bodies() -> None:
    approve = load(V / "approval-approve.json")["request"]["body"]["messages"][0]
    assert approval_message([Decision("call_fake41", True, "ignored when approving")]) == approve
    deny = load(V / "approval-conversation-deny-stream.json")["request"]["body"]["messages"][0]
    assert approval_message([Decision("call_fake88", False, "denied in Slack")]) == deny


def test_a_stale_decision_and_a_pending_approval_are_said_plainly() -> None:
    wrong = parse_error(load(V / "approval-approve-wrong-id.json")["response"]["body"]).describe()
    stale = LettaError(Kind.INVALID, wrong, status=400)
    assert stale.stale_decision and "no longer waited" in stale.explain("finn")
    for name in ("approval-pending-new-message.json", "approval-conversation-pending-new-message.json"):
        detail = parse_error(load(V / name)["response"]["body"]).describe()
        busy = LettaError(Kind.CONFLICT, detail, status=409)
        assert busy.pending_approval and not busy.busy, name  # not waited out as a busy conversation
        assert "waiting for someone to approve" in busy.explain("finn")


def test_history_shows_whether_a_decision_reached_the_agent() -> None:
    history = MESSAGE_LIST.validate_python(load(V / "approval-history-final.json")["response"]["body"])
    sent = load(V / "approval-send.json")["request"]["body"]["messages"][0]["otid"]
    found = replies_after(history, sent)
    assert found is not None and "call_fake41" in found.tool_returns


def test_an_app_server_permission_request_is_a_question() -> None:
    frames = [f["json"] for f in load(APP_SERVER / "ws-approval-allow.json")["frames"] if f.get("json")]
    request = next(wire.ControlRequest.model_validate(f) for f in frames if f.get("type") == "control_request")
    got = question(request)
    assert (got.request_id, got.tool_call_id, got.name) == ("perm-call_fake9", "call_fake9", "Bash")
    assert json.loads(got.arguments) == {"command": "echo capture-tool-ok", "description": ""}


def test_a_request_streamed_in_fragments_is_one_whole_question() -> None:
    """0.16.8 with stream_tokens (approval-stream-tokens.json): fragments of one message, `tool_calls` an object."""
    events = [e["data"] for e in load(V / "approval-stream-tokens.json")["response"]["events"] if e["data"] != "[DONE]"]
    questions = Questions()
    for item in MESSAGE_LIST.validate_python(events):
        questions.add(item)
    [question] = questions.done()
    [call] = question.calls
    assert call.name == "shout" and call.arguments == '{"message": "ok"}' and call.tool_call_id.startswith("call_")
    assert question.request_id == events[1]["id"]


def test_history_lists_every_call_one_return_message_answered() -> None:
    """revAA: real 0.16.8 answers parallel calls in ONE tool_return_message, its top level one call's only; every
    call in its `tool_returns` has returned (a decision on any of them reached Letta)."""
    final = load(V / "parallel-tools-approvals-agent-history-final.json")
    history = MESSAGE_LIST.validate_python(final["response"]["body"])
    sent = load(V / "parallel-tools-approvals-agent-send.json")["request"]["body"]["messages"][0]["otid"]
    found = replies_after(history, sent)
    asked = load(V / "parallel-tools-approvals-agent-approve-both.json")["request"]["body"]["messages"][0]["approvals"]
    assert found is not None and set(found.tool_returns) == {a["tool_call_id"] for a in asked}
    assert found.asked == ()
