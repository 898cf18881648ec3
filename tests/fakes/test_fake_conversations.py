"""Self-tests of the fake Letta's conversation routes against the 0.16.8 captures (older versions have none)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta
from tests.fakes.test_fake_letta import BODY, assert_like_capture, cap, replay

DORA = cap("0.16.8", "agents-create-dora")["response"]["body"]


@pytest.fixture
def fake() -> Iterator[FakeLetta]:
    server = FakeLetta("0.16.8")
    server.start()
    server.add_agent(DORA["name"], agent_id=DORA["id"])
    yield server
    server.stop()


def create(fake: FakeLetta, agent_id: str = DORA["id"], summary: str = "thread") -> str:
    answer = httpx.post(
        f"{fake.base_url}/v1/conversations/", params={"agent_id": agent_id}, json={"summary": summary}, timeout=5
    )
    assert answer.status_code == 200
    conv_id: str = answer.json()["id"]
    return conv_id


def send(fake: FakeLetta, conv_id: str, body: dict[str, Any], timeout: float = 5) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/v1/conversations/{conv_id}/messages", json=body, timeout=timeout)


def events(answer: httpx.Response) -> list[Any]:
    return [
        json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
        for line in answer.text.splitlines()
        if line.startswith("data: ")
    ]


def test_create_answers_a_conversation_shaped_like_the_capture(fake: FakeLetta) -> None:
    real = cap("0.16.8", "conversations-create")
    answer = replay(fake, real)
    assert answer.status_code == 200
    got, want = answer.json(), real["response"]["body"]
    assert list(got) == list(want)
    assert got["agent_id"] == DORA["id"] and got["summary"] == want["summary"] and got["id"].startswith("conv-")
    assert got["in_context_message_ids"] == [] and got["last_message_at"] is None


@pytest.mark.parametrize(
    "name",
    [
        "conversations-create-missing-agent-id",
        "conversations-create-unknown-agent",
        "conversations-get-malformed",
        "conversations-get-unknown",
        "conversations-send-unknown",
    ],
)
def test_conversation_errors_replay_exactly(fake: FakeLetta, name: str) -> None:
    real = cap("0.16.8", name)
    answer = replay(fake, real)
    assert answer.status_code == real["response"]["status"]
    assert answer.json() == real["response"]["body"]


@pytest.mark.parametrize("version", ["0.11.7", "0.12.1", "0.16.4"])
def test_older_servers_have_no_conversation_routes(version: str) -> None:
    with FakeLetta(version) as older:
        aid = older.add_agent("dora")
        for method, path in (
            ("POST", f"/v1/conversations/?agent_id={aid}"),
            ("GET", "/v1/conversations/"),
            ("POST", f"/v1/conversations/conv-{'0' * 36}/messages"),
        ):
            answer = httpx.request(method, older.base_url + path, json={}, timeout=5)
            assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})


def test_send_streams_by_default_and_answers_json_when_told_not_to(fake: FakeLetta) -> None:
    conv_id = create(fake)
    streamed = send(fake, conv_id, BODY)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    real = [e["data"] for e in cap("0.16.8", "conversations-send-default-streams")["response"]["events"]]
    got = events(streamed)
    assert [e if isinstance(e, str) else e["message_type"] for e in got] == [
        e if isinstance(e, str) else e["message_type"] for e in real
    ]
    assert_like_capture(got[1], real[1])
    plain = send(fake, conv_id, {**BODY, "streaming": False})
    assert plain.headers["content-type"] == "application/json"
    want = cap("0.16.8", "conversations-send")["response"]["body"]
    assert list(plain.json()) == list(want)
    assert_like_capture(plain.json()["messages"][0], want["messages"][0])


def test_stream_tokens_sends_the_reply_word_by_word(fake: FakeLetta) -> None:
    conv_id = create(fake)
    fake.set_reply(DORA["id"], "one two three")
    got = events(send(fake, conv_id, {**BODY, "stream_tokens": True}))
    words = [e["content"] for e in got if isinstance(e, dict) and e["message_type"] == "assistant_message"]
    assert words == ["one ", "two ", "three"]


def test_history_is_per_conversation_newest_first_while_the_agent_mixes_them(fake: FakeLetta) -> None:
    first, second = create(fake), create(fake)
    for conv_id, otid in (
        (first, "11111111-1111-4111-8111-111111111111"),
        (second, "22222222-2222-4222-8222-222222222222"),
    ):
        body = {"messages": [{**BODY["messages"][0], "otid": otid}], "streaming": False}
        assert send(fake, conv_id, body).status_code == 200
    listed = httpx.get(f"{fake.base_url}/v1/conversations/{first}/messages", timeout=5).json()
    assert [m["message_type"] for m in listed] == ["assistant_message", "user_message", "system_message"]
    assert (listed[1]["otid"], listed[1]["name"]) == ("11111111-1111-4111-8111-111111111111", "maria")
    real = cap("0.16.8", "conversations-messages")["response"]["body"]
    want = next(m for m in real if m["message_type"] == "user_message")
    assert_like_capture({**listed[1], "content": want["content"]}, want)
    oldest = httpx.get(
        f"{fake.base_url}/v1/conversations/{first}/messages", params={"order": "asc", "limit": 2}, timeout=5
    ).json()
    assert [m["message_type"] for m in oldest] == ["system_message", "user_message"]
    older = httpx.get(
        f"{fake.base_url}/v1/conversations/{first}/messages", params={"before": listed[0]["id"], "limit": 1}, timeout=5
    ).json()
    assert [m["id"] for m in older] == [listed[1]["id"]]
    mixed = httpx.get(f"{fake.base_url}/v1/agents/{DORA['id']}/messages", timeout=5).json()
    assert sum(m["message_type"] == "system_message" for m in mixed) == 3  # the agent's own and one per thread
    assert sum(m["message_type"] == "user_message" for m in mixed) == 2


def test_a_deleted_conversation_answers_404_like_the_capture(fake: FakeLetta) -> None:
    conv_id = create(fake)
    deleted = httpx.delete(f"{fake.base_url}/v1/conversations/{conv_id}", timeout=5)
    assert (deleted.status_code, deleted.json()) == (200, None)
    gone = send(fake, conv_id, {**BODY, "streaming": False})
    real = cap("0.16.8", "conversations-send-deleted")["response"]
    assert gone.status_code == real["status"] == 404
    assert gone.json()["detail"].startswith(f"Conversation not found with id='['{conv_id}']'")
    assert real["body"]["detail"].startswith("Conversation not found with id='['conv-")


def test_a_deleted_or_unknown_conversation_lists_no_messages_rather_than_404(fake: FakeLetta) -> None:
    conv_id = create(fake)
    assert send(fake, conv_id, {**BODY, "streaming": False}).status_code == 200
    assert httpx.delete(f"{fake.base_url}/v1/conversations/{conv_id}", timeout=5).status_code == 200
    unknown = "conv-00000000-0000-4000-8000-000000000000"
    for gone in (conv_id, unknown):
        listed = httpx.get(f"{fake.base_url}/v1/conversations/{gone}/messages", timeout=5)
        assert (listed.status_code, listed.json()) == (200, [])
        assert httpx.get(f"{fake.base_url}/v1/conversations/{gone}", timeout=5).status_code == 404


def test_get_and_list_show_the_conversation(fake: FakeLetta) -> None:
    conv_id = create(fake)
    got = httpx.get(f"{fake.base_url}/v1/conversations/{conv_id}", timeout=5).json()
    assert got["id"] == conv_id and len(got["in_context_message_ids"]) == 1
    listed = httpx.get(f"{fake.base_url}/v1/conversations/", params={"agent_id": DORA["id"]}, timeout=5).json()
    assert [c["id"] for c in listed] == [conv_id]


def _in_thread(target: Callable[[], httpx.Response], out: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(target().status_code))
    thread.start()
    return thread


def test_two_conversations_of_one_agent_run_at_once_without_counting_as_overlap(fake: FakeLetta) -> None:
    first, second = create(fake), create(fake)
    fake.set_delay(DORA["id"], 0.3)
    statuses: list[int] = []
    threads = [_in_thread(lambda c=c: send(fake, c, BODY), statuses) for c in (first, second)]  # type: ignore[misc]
    for thread in threads:
        thread.join()
    assert statuses == [200, 200] and fake.overlaps == []
    a, b = fake.inputs
    assert {a.conversation, b.conversation} == {first, second}
    assert a.finished is not None and b.started < a.finished  # they did run at the same time


def test_two_sends_to_one_conversation_are_reported_as_overlap(fake: FakeLetta) -> None:
    conv_id = create(fake)
    fake.set_delay(DORA["id"], 0.3)
    statuses: list[int] = []
    for thread in [_in_thread(lambda: send(fake, conv_id, BODY), statuses) for _ in range(2)]:
        thread.join()
    [(key, _, _)] = fake.overlaps
    assert key == conv_id


def test_busy_next_answers_the_captured_conflict_once(fake: FakeLetta) -> None:
    conv_id = create(fake)
    fake.busy_next(conv_id)
    busy = send(fake, conv_id, BODY)
    real = cap("0.16.8", "concurrent-redis-conversations-same-stream")["second"]["response"]["body"]
    assert busy.status_code == 409 and list(busy.json()) == list(real)
    assert busy.json()["run_id"] in busy.json()["detail"] and busy.json()["detail"].startswith("CONFLICT: ")
    assert send(fake, conv_id, BODY).status_code == 200
    assert len(fake.inputs) == 1 and S.is_v16(fake.version)


def test_an_approval_request_streams_in_fragments_with_stream_tokens(fake: FakeLetta) -> None:
    """As approval-conversation-send-stream-tokens.json: fragments of one message, `tool_calls` one object each,
    the first naming the tool, the rest `name: null`, the arguments whole once joined."""
    real = [e["data"] for e in cap("0.16.8", "approval-conversation-send-stream-tokens")["response"]["events"]]
    fake.ask_approval(DORA["id"], ("shout", '{"message": "ok"}'))
    got = events(send(fake, create(fake), {**BODY, "stream_tokens": True}))

    def fragments(stream: list[Any]) -> list[dict[str, Any]]:
        return [e for e in stream if isinstance(e, dict) and e.get("message_type") == "approval_request_message"]

    for frames in (fragments(real), fragments(got)):
        assert len({f["id"] for f in frames}) == 1 and all(f["otid"] == f["id"] for f in frames)
        assert all(isinstance(f["tool_calls"], dict) and f["tool_calls"] == f["tool_call"] for f in frames)
        assert [f["tool_call"]["name"] for f in frames] == ["shout", None]
        assert "".join(f["tool_call"]["arguments"] for f in frames) == '{"message": "ok"}'
        assert list(frames[0]) == list(fragments(real)[0])
    assert [e["message_type"] for e in got if isinstance(e, dict)][-2:] == ["stop_reason", "usage_statistics"]


def test_the_answer_to_a_decision_streams_its_words_in_fragments_with_stream_tokens(fake: FakeLetta) -> None:
    """As approval-approve-stream-tokens.json: the tool's return whole, then the agent's words one fragment per
    chunk (the same id and otid), stop_reason, usage. The fake sent the words whole."""
    real = [e["data"] for e in cap("0.16.8", "approval-approve-stream-tokens")["response"]["events"]]
    fake.ask_approval(DORA["id"], ("shout", '{"message": "ok"}'))
    conv_id = create(fake)
    asked = events(send(fake, conv_id, {**BODY, "stream_tokens": True}))
    call = next(e for e in asked if isinstance(e, dict) and e.get("message_type") == "approval_request_message")
    decision = {"type": "approval", "approvals": [{"type": "approval", "approve": True,
                                                   "tool_call_id": call["tool_call"]["tool_call_id"]}]}
    got = events(send(fake, conv_id, {"messages": [decision], "stream_tokens": True}))

    def kinds(stream: list[Any]) -> list[str]:
        return [e["message_type"] for e in stream if isinstance(e, dict)]

    def words(stream: list[Any]) -> list[dict[str, Any]]:
        return [e for e in stream if isinstance(e, dict) and e.get("message_type") == "assistant_message"]

    assert kinds(got) == kinds(real), got
    for frames in (words(real), words(got)):
        assert len({(f["id"], f["otid"]) for f in frames}) == 1
    assert "".join(f["content"] for f in words(got)) == "dora says hi"
