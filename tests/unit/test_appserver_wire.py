"""Every frame of every App Server capture parses into the bridge's wire models (reference/letta/app-server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.letta.appserver import outgoing, wire
from bridge.letta.appserver.turn import TextDelta, TurnReader, plain, turn_error
from bridge.letta.errors import Kind
from tests.reference import APP_SERVER, app_server_captures, load

CAPTURES = app_server_captures()
WEBSOCKET = [p for p in CAPTURES if load(p).get("transport") == "websocket"]
KNOWN_FRAMES = set(wire._FRAMES)

SENT_MODELS: dict[str, type[outgoing.Sent]] = {
    "app_server_info": outgoing.AppServerInfo,
    "agent_list": outgoing.AgentList,
    "agent_retrieve": outgoing.AgentRetrieve,
    "conversation_create": outgoing.ConversationCreate,
    "conversation_update": outgoing.ConversationUpdate,
    "conversation_list": outgoing.ConversationList,
    "conversation_messages_list": outgoing.ConversationMessagesList,
    "abort_message": outgoing.AbortMessage,
}


def _received(path: Path) -> list[str]:
    return [f["text"] for f in load(path)["frames"] if f["dir"] == "received"]


def test_the_captures_are_there() -> None:
    assert (APP_SERVER / "README.md").is_file()
    assert len(CAPTURES) > 150
    assert len(WEBSOCKET) > 80


@pytest.mark.parametrize("path", WEBSOCKET, ids=lambda p: p.name)
def test_every_received_frame_parses(path: Path) -> None:
    for text in _received(path):
        frame = wire.parse_frame(text)
        assert frame is not None, text[:200]
        data = json.loads(text)
        if data["type"] in KNOWN_FRAMES:
            assert not isinstance(frame, wire.UnknownFrame), data["type"]
        else:
            assert isinstance(frame, wire.UnknownFrame) and frame.type == data["type"]
        if isinstance(frame, wire.StreamDelta):
            assert frame.delta.message_type == data["delta"].get("message_type")
        if isinstance(frame, wire.MessagesListResponse):
            assert len(frame.messages) == len(data["messages"])


@pytest.mark.parametrize("path", WEBSOCKET, ids=lambda p: p.name)
def test_the_frames_the_bridge_sends_have_the_captured_shape(path: Path) -> None:
    """Read back through the bridge's own models, a captured command dumps to the same JSON: field names and
    nesting are the server's. (The malformed frames of ws-malformed-frames.json are bad on purpose.)"""
    if path.name == "ws-malformed-frames.json":
        return
    for sent in (f for f in load(path)["frames"] if f["dir"] == "sent"):
        data: Any = sent.get("json")
        if not isinstance(data, dict) or "request_id" not in data:
            continue
        model: type[outgoing.Sent] | None = SENT_MODELS.get(data.get("type", ""))
        kind = data.get("payload", {}).get("kind")
        if data.get("type") == "input" and kind in ("create_message", "approval_response"):
            if isinstance(data["payload"].get("messages"), list) and not data["payload"]["messages"]:
                continue
            model = outgoing.Input
        if model is not None:
            assert model.model_validate(data).dump() == data


def test_a_sent_message_keeps_an_empty_tool_allowlist() -> None:
    runtime = wire.Runtime(agent_id="agent-local-x", conversation_id="local-conv-1")
    payload = outgoing.CreateMessage(
        messages=[outgoing.OutgoingMessage(content="hi", client_message_id="otid-1")], client_tool_allowlist=[]
    )
    frame = outgoing.Input(request_id="input-1", runtime=runtime, payload=payload).dump()
    captured = next(
        f["json"]
        for f in load(APP_SERVER / "ws-turn-client-tool-allowlist-empty.json")["frames"]
        if f["dir"] == "sent" and f["json"]["type"] == "input"
    )
    assert list(frame) == list(captured)
    assert list(frame["payload"]) == list(captured["payload"]) and frame["payload"]["client_tool_allowlist"] == []


def test_app_server_info_over_http_and_websocket() -> None:
    http = load(APP_SERVER / "http-app-server-info.json")["response"]["body"]
    info = wire.AppServerInfoResponse.model_validate(http)
    assert (info.letta_code_version, info.protocol_version, info.backend) == ("0.32.18", 1, "local")
    assert info.request_id == "http-info"


def test_what_is_not_an_object_is_dropped() -> None:
    assert wire.parse_frame("this is not json") is None
    assert wire.parse_frame("[1,2,3]") is None
    assert isinstance(wire.parse_frame('{"no_type": true}'), wire.UnknownFrame)
    assert isinstance(wire.parse_frame('{"type": "something_new", "x": 1}'), wire.UnknownFrame)


def test_a_captured_turn_reads_as_one_joined_reply() -> None:
    frames = [wire.parse_frame(t) for t in _received(APP_SERVER / "ws-runtime-start-and-first-turn.json")]
    reader = TurnReader("slack-T1-C1-1700000000.000100", queued=False)
    events = [e for f in frames if f is not None for e in reader.feed(f)]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["alice ", "alice says ", "alice says hi"]
    assert events[-1] == reader.finish("end_turn", None, "local-run-2")
    assert events[-1].replies == ("alice says hi",) and events[-1].error is None


def test_the_queued_turn_skips_the_turn_ahead_of_it() -> None:
    frames = [wire.parse_frame(t) for t in _received(APP_SERVER / "ws-busy-same-conversation-queued.json")]
    reader = TurnReader("cm-busy-2", queued=True)
    events = [e for f in frames if f is not None for e in reader.feed(f)]
    finished = events[-1]
    assert finished.run_id == "local-run-19"  # batch-1, not the first turn's local-run-18


def test_a_failing_model_is_said_in_plain_words() -> None:
    frames = [wire.parse_frame(t) for t in _received(APP_SERVER / "ws-llm-error-500.json")]
    reader = TurnReader("cm-500", queued=False)
    events = [e for f in frames if f is not None for e in reader.feed(f)]
    assert len(events) == 1  # the intermediate stop_reason deltas do not end it: turn_finished does
    error = events[0].error
    assert error is not None and error.kind == Kind.RUN_FAILED
    assert error.detail == "the model provider failed: HTTP 500: fake upstream failure"
    assert "{" not in plain('{"error": {"error": {"message": "boom"}}}')


def test_a_model_no_provider_serves_is_not_said_as_worth_asking_again() -> None:
    """The server marks it `retryable: false` (capture ws-turn-agent-with-unknown-model.json; a real 0.34.12 said
    `Unknown model "nope-model" for provider "openai-compatible". Choose an available model with /model.`): asking
    again fails the same way, and /model is Letta Code's terminal command, not one that works in Slack."""
    frames = [wire.parse_frame(t) for t in _received(APP_SERVER / "ws-turn-agent-with-unknown-model.json")]
    reader = TurnReader("cm-badmodel", queued=False)
    events = [e for f in frames if f is not None for e in reader.feed(f)]
    error = events[-1].error
    assert error is not None and error.kind == Kind.RUN_FAILED
    said = error.explain("nomo")
    assert 'Model provider "nope" is not registered' in said and "/model" not in said, said
    assert "Ask again" not in said and "operator" in said, said


def test_stop_reasons_as_error_kinds() -> None:
    assert turn_error("end_turn", None) is None
    gone = turn_error("error", "Conversation local-conv-999999 not found")
    assert gone is not None and gone.conversation_gone
    stuck = turn_error("error", "Conversation local-conv-3 already has an active run (local-run-7)")
    assert stuck is not None and stuck.kind == Kind.CONFLICT and not stuck.busy
    agent = turn_error("error", "Agent agent-local-x not found")
    assert agent is not None and agent.kind == Kind.NOT_FOUND
    cancelled = turn_error("cancelled", None)
    assert cancelled is not None and cancelled.kind == Kind.RUN_FAILED


def test_an_unreadable_frame_is_logged_without_the_words_it_carries(caplog: pytest.LogCaptureFixture) -> None:
    """A frame of a shape this bridge cannot read is one warning line, saying where and why; what people or
    agents wrote is logged only at DEBUG (docs/operations.md), so pydantic's copy of the input stays out."""
    said = {"type": "text", "text": "the launch codes are XYZZY-1138"}
    frames = [
        {"type": "stream_delta", "delta": {"message_type": "assistant_message", "content": said}},
        {"type": "conversation_messages_list_response", "request_id": "r1",
         "messages": [{"message_type": "user_message", "content": said}]},
    ]
    caplog.set_level("WARNING", logger="bridge.letta.appserver.wire")
    for frame in frames:
        assert wire.parse_frame(json.dumps(frame)) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("content" in line for line in lines), lines
    assert not [line for line in lines if "XYZZY" in line], lines
