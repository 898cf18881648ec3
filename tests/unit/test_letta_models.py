"""Every Letta response in reference/letta that the bridge reads parses, on every version."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.letta.errors import Kind
from bridge.letta.exchange import authored_replies
from bridge.letta.models import (
    AGENT_LIST,
    CONVERSATION_LIST,
    GROUP_LIST,
    MESSAGE_LIST,
    Agent,
    AssistantMessage,
    Conversation,
    Group,
    Health,
    LettaResponse,
    StopReason,
    UnknownMessage,
    UserMessage,
    parse_error,
    run_error,
    run_failure,
)
from tests.reference import LETTA, letta_captures, load

CAPTURES = letta_captures()


def _exchanges(path: Path) -> list[dict[str, Any]]:
    data = load(path)
    if "request" in data:
        return [data]
    return [data[k] for k in ("first", "second") if k in data]


def _path(exchange: dict[str, Any]) -> str:
    return exchange["request"]["path"].split("?")[0]


def _ok_json(exchange: dict[str, Any]) -> Any:
    response = exchange.get("response") or {}
    if response.get("status") != 200 or "events" in response or "body" not in response:
        return None
    return response["body"]


def test_the_reference_is_there() -> None:
    assert LETTA.is_dir(), f"reference captures missing at {LETTA}"
    assert len(CAPTURES) > 300
    assert {p.parent.name for p in CAPTURES} == {"0.11.7", "0.12.1", "0.16.4", "0.16.8"}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_capture_the_bridge_reads_parses(path: Path) -> None:
    for exchange in _exchanges(path):
        method = exchange["request"]["method"]
        route = _path(exchange)
        body = _ok_json(exchange)
        response = exchange.get("response") or {}
        if body is not None:
            if route == "/v1/health/":
                assert Health.model_validate(body).version == path.parent.name
            elif method == "GET" and re.fullmatch(r"/v1/agents/agent-[0-9a-f-]+", route):
                agent = Agent.model_validate(body)
                assert agent.id.startswith("agent-") and agent.name
            elif method == "GET" and route == "/v1/agents/":
                assert all(a.name for a in AGENT_LIST.validate_python(body))
            elif method == "GET" and re.fullmatch(r"/v1/groups/group-[0-9a-f-]+", route):
                group = Group.model_validate(body)
                assert group.manager_type and group.agent_ids
            elif method == "GET" and route == "/v1/groups/":
                assert all(g.id.startswith("group-") for g in GROUP_LIST.validate_python(body))
            elif re.fullmatch(r"/v1/conversations/(conv-[0-9a-f-]+)?", route) and method in ("GET", "POST", "PATCH"):
                listed = body if isinstance(body, list) else [body]
                for conversation in CONVERSATION_LIST.validate_python(listed):
                    assert conversation.id.startswith("conv-") and conversation.agent_id.startswith("agent-")
            elif method == "POST" and route.endswith("/messages") and isinstance(body, dict):
                parsed = LettaResponse.model_validate(body)
                assert parsed.messages or parsed.stop_reason
            elif method == "GET" and route.endswith("/messages") and isinstance(body, list):
                MESSAGE_LIST.validate_python(body)
        elif "events" in response:
            data = [e["data"] for e in response["events"] if isinstance(e.get("data"), dict)]
            MESSAGE_LIST.validate_python([d for d in data if "message_type" in d])
        elif isinstance(response.get("status"), int) and response["status"] >= 400 and "body" in response:
            described = parse_error(response["body"]).describe()
            assert isinstance(described, str)


def _body(name: str) -> dict[str, Any]:
    return load(LETTA / name)["response"]["body"]


def test_round_robin_group_reply_is_each_agent_by_name_in_order() -> None:
    parsed = LettaResponse.model_validate(_body("0.11.7/groups-send-round_robin.json"))
    assert authored_replies(parsed, "group") == [
        ("alice", "alice says hi"),
        ("bob", "bob says hi"),
        ("carol", "carol says hi"),
    ]
    assert run_failure(parsed) is None


def test_direct_agent_reply_has_no_name_on_every_version() -> None:
    for version in ("0.11.7", "0.16.4", "0.16.8"):
        parsed = LettaResponse.model_validate(_body(f"{version}/agents-send.json"))
        replies = [m for m in parsed.messages if isinstance(m, AssistantMessage)]
        assert replies and all(m.name is None for m in replies)
        assert authored_replies(parsed, "alice") == [("alice", "alice says hi")]


def test_unknown_message_types_are_kept_as_unknown_not_errors() -> None:
    parsed = MESSAGE_LIST.validate_python(
        [
            {"message_type": "hidden_reasoning_message", "id": "x"},
            {"message_type": "assistant_message", "content": "hi"},
        ]
    )
    assert isinstance(parsed[0], UnknownMessage)
    assert isinstance(parsed[1], AssistantMessage)


def test_history_user_message_carries_the_clients_otid_and_name() -> None:
    sent = load(LETTA / "0.16.8/agents-send.json")["request"]["body"]["messages"][0]
    history = MESSAGE_LIST.validate_python(_body("0.16.8/agents-history-alice.json"))
    users = [m for m in history if isinstance(m, UserMessage) and m.otid == sent["otid"]]
    assert users and users[0].name == sent["name"]


def test_error_bodies_in_their_several_shapes_become_one_line() -> None:
    assert parse_error(_body("0.16.8/llm500-agents-send.json")).describe() == "An error occurred with the LLM request."
    assert "is not in the valid format" in parse_error(_body("0.11.7/error-agent-get-malformed-id.json")).describe()
    assert parse_error(_body("0.11.7/error-agent-send-malformed-body.json")).describe() == "Field required"
    assert parse_error(_body("0.16.8/error-group-get-malformed-id.json")).describe() == (
        "group_id: String should match pattern 'group-{uuid4}'"  # 0.16's repr of pydantic's list, as words
    )
    assert parse_error({"detail": {"code": "PENDING_APPROVAL", "message": "CONFLICT: busy"}}).describe() == (
        "CONFLICT: busy"
    )
    assert parse_error("not an object").describe()


def test_stop_reason_error_inside_a_200_is_a_failure() -> None:
    parsed = LettaResponse(messages=[], stop_reason=StopReason(stop_reason="llm_api_error"))
    assert run_failure(parsed) == "stop reason llm_api_error"


def test_out_of_credits_inside_a_200_is_said_as_in_a_stream() -> None:
    """A send answered as JSON (no stream route, or a proxy's) carries the stop reason a stream does: said as the
    operator's to fix, as a 402 is, not "Ask again in a moment"."""
    parsed = LettaResponse(messages=[], stop_reason=StopReason(stop_reason="insufficient_credits"))
    error = run_error(parsed, "https://api.letta.com")
    assert error is not None and error.kind == Kind.QUOTA
    assert "Ask again in a moment" not in error.explain("finn"), error.explain("finn")


def test_conversations_parse_and_their_history_keeps_the_senders_otid() -> None:
    created = Conversation.model_validate(_body("0.16.8/conversations-create.json"))
    assert created.id.startswith("conv-") and created.summary == "slack C123 thread 1700000000.000100"
    assert created.last_message_at is None and created.in_context_message_ids == []
    parsed = [
        CONVERSATION_LIST.validate_python(load(p)["response"]["body"])
        for p in CAPTURES
        if p.parent.name == "0.16.8" and p.name.startswith("conversations-list")
    ]
    assert parsed and all(c.id.startswith("conv-") for page in parsed for c in page)
    sent = load(LETTA / "0.16.8/conversations-send.json")["request"]["body"]["messages"][0]
    history = MESSAGE_LIST.validate_python(_body("0.16.8/conversations-messages.json"))
    [user] = [m for m in history if isinstance(m, UserMessage) and m.otid == sent["otid"]]
    assert user.name == "maria"


def test_a_busy_conversation_names_its_run() -> None:
    body = load(LETTA / "0.16.8/concurrent-redis-conversations-same-stream.json")["second"]["response"]["body"]
    error = parse_error(body)
    assert error.run_id is not None and error.run_id.startswith("run-") and error.describe().startswith("CONFLICT")
