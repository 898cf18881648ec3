"""Self-tests of the fake Letta at the edges where it once answered otherwise (often more kindly) than a real
server, each against the capture of a real server's answer (reference/letta/README.md section 22,
tests/real/capture_edges.py)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.fakes.letta import FakeLetta
from tests.fakes.test_fake_conversations import events
from tests.fakes.test_fake_letta import cap
from tests.fakes.test_fake_runs import meanwhile, user, user_otids


@pytest.fixture
def letta(request: pytest.FixtureRequest) -> Iterator[FakeLetta]:
    version, _, redis = str(getattr(request, "param", "0.16.8")).partition("+")
    fake = FakeLetta(version, redis=redis == "redis")
    fake.start()
    yield fake
    fake.stop()


def conversation(letta: FakeLetta, agent_id: str) -> str:
    return str(httpx.post(f"{letta.base_url}/v1/conversations/", params={"agent_id": agent_id}, json={}).json()["id"])


def kinds(stream: list[Any]) -> list[str]:
    """Each event's message_type (or stop_reason's value), `[DONE]` as itself."""
    return [e if isinstance(e, str) else e.get("stop_reason") or e["message_type"] for e in stream]


def test_without_redis_a_background_send_is_refused_and_nothing_is_stored(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    conv = conversation(letta, ivy)
    message = user("background without redis")
    got = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/messages",
                     json={"messages": [message], "background": True})
    real = cap("0.16.8", "conversations-background-without-redis")["response"]
    assert (got.status_code, got.json()) == (real["status"], real["body"]) == (503, real["body"])
    after = cap("0.16.8", "conversations-history-after-background-without-redis")["response"]["body"]
    assert user_otids(after) == [] and letta.inputs == []
    assert user_otids(letta.conversation_history(conv)) == [] and letta.active_runs() == []
    default = httpx.post(f"{letta.base_url}/v1/conversations/default/messages",
                         json={"messages": [user("default")], "agent_id": ivy, "background": True})
    assert default.status_code == cap("0.16.8", "conversations-default-background-without-redis")["response"][
        "status"] == 503


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_same_otid_background_send_after_the_run_ended_replays_it(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    conv = conversation(letta, ivy)
    body = {"messages": [user("background once")], "background": True}
    url = f"{letta.base_url}/v1/conversations/{conv}/messages"
    first = httpx.post(url, json=body, timeout=10)
    again = httpx.post(url, json=body, timeout=10)
    real_first = cap("0.16.8", "redis-conversations-background-send-2")["response"]["events"]
    real_again = cap("0.16.8", "redis-conversations-same-otid-background-after-finish")["response"]["events"]
    assert [e["data"] for e in real_first] == [e["data"] for e in real_again]  # the same run's events again
    assert events(again) == events(first) and len(letta.inputs) == 1
    real_history = cap("0.16.8", "redis-conversations-history-after-same-otid-background")["response"]["body"]
    assert len(user_otids(real_history)) == 1
    assert user_otids(letta.conversation_history(conv)) == [body["messages"][0]["otid"]]  # type: ignore[index]


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_cancelled_background_run_ends_with_done(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 0.8)
    conv = conversation(letta, ivy)
    answers: list[httpx.Response] = []
    body = {"messages": [user("background cancelled")], "background": True}
    sender = meanwhile(lambda: answers.append(
        httpx.post(f"{letta.base_url}/v1/conversations/{conv}/messages", json=body, timeout=10)))
    letta.wait_for(lambda: bool(letta.inputs))
    cancel = httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages/cancel")
    sender.join()
    real_cancel = cap("0.16.8", "redis-agents-cancel-during-background")["response"]
    assert cancel.status_code == real_cancel["status"] == 200
    assert list(cancel.json().values()) == list(real_cancel["body"].values()) == ["cancelled"]
    real = cap("0.16.8", "redis-conversations-background-cancelled")["response"]["events"]
    assert kinds(events(answers[0])) == kinds([e["data"] for e in real]) == ["ping", "cancelled", "[DONE]"]


@pytest.mark.parametrize("letta", ["0.16.8", "0.16.8+redis"], indirect=True)
def test_cancels_and_sends_on_what_does_not_exist_are_refused_as_captured(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    unknown = "conv-00000000-0000-4000-8000-000000000000"
    got = httpx.post(f"{letta.base_url}/v1/conversations/{unknown}/cancel")
    real = cap("0.16.8", "redis-conversations-cancel-unknown")["response"]
    assert (got.status_code, got.json()) == (real["status"], real["body"]) == (404, real["body"])
    idle = httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages/cancel")
    real_idle = cap("0.16.8", "agents-cancel-idle")["response"]
    assert idle.status_code == real_idle["status"] == 409
    assert idle.json()["detail"] == real_idle["body"]["detail"].rsplit(" ", 1)[0] + " " + ivy
    conv = conversation(letta, ivy)
    idle_conv = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/cancel")
    assert idle_conv.status_code == cap("0.16.8", "conversations-cancel-idle")["response"]["status"] == 409
    no_agent = httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json={"messages": [user("x")]})
    real_no_agent = cap("0.16.8", "redis-conversations-default-send-without-agent-id")["response"]
    assert (no_agent.status_code, no_agent.json()) == (real_no_agent["status"], real_no_agent["body"])


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_resuming_an_unknown_run_id_is_the_captured_404(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    conv = conversation(letta, ivy)
    run_id = f"run-{uuid.uuid4()}"
    got = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/stream", json={"run_id": run_id})
    real = cap("0.16.8", "redis-conversations-stream-resume-unknown-run-id")
    asked = real["request"]["body"]["run_id"]
    assert got.status_code == real["response"]["status"] == 404
    assert got.json()["detail"] == real["response"]["body"]["detail"].replace(asked, run_id)


def test_the_agent_cancel_names_a_finished_non_streamed_conversation_sends_run(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    conv = conversation(letta, ivy)
    sent = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/messages",
                      json={"messages": [user("plain send")], "streaming": False})
    assert sent.status_code == 200 and len(letta.active_runs()) == 1  # runs-active-default-during-send: left created
    got = httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages/cancel")
    real = cap("0.16.8", "redis-agents-cancel-after-nonstream-conversation-send")["response"]
    assert got.status_code == real["status"] == 200 and list(got.json().values()) == list(real["body"].values())
    assert list(got.json()) == [sent.json()["messages"][0]["run_id"]]
    assert letta.active_runs() == []


@pytest.mark.parametrize("letta", ["0.11.7"], indirect=True)
def test_0_11_7_answers_a_cancel_and_cancels_nothing(letta: FakeLetta) -> None:
    eve = letta.add_agent("eve")
    letta.set_delay(eve, 0.8)
    idle = httpx.post(f"{letta.base_url}/v1/agents/{eve}/messages/cancel")
    real_idle = cap("0.11.7", "agents-cancel-idle")["response"]
    assert (idle.status_code, idle.json()) == (real_idle["status"], real_idle["body"]) == (200, {})
    answers: list[httpx.Response] = []
    sender = meanwhile(lambda: answers.append(httpx.post(
        f"{letta.base_url}/v1/agents/{eve}/messages/stream", json={"messages": [user("cancel me")]}, timeout=10)))
    letta.wait_for(lambda: bool(letta.inputs))
    got = httpx.post(f"{letta.base_url}/v1/agents/{eve}/messages/cancel")
    sender.join()
    real = cap("0.11.7", "agents-cancel-during-stream")["response"]
    assert got.status_code == real["status"] == 200 and list(got.json().values()) == ["cancelled"]
    real_stream = cap("0.11.7", "agents-stream-cancelled")["response"]["events"]
    assert kinds(events(answers[0])) == kinds([e["data"] for e in real_stream])  # it ran to its end


def test_0_16_8_streams_ping_while_the_model_works(letta: FakeLetta) -> None:
    real = [e["data"] for e in cap("0.16.8", "llmhang-agents-stream")["response"]["events"]]
    pings = [datetime.fromisoformat(e["date"]) for e in real if isinstance(e, dict) and e["message_type"] == "ping"]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(pings)}
    assert len(pings) > 3 and gaps == {letta.ping_interval} == {20.0}
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 0.7)
    letta.ping_interval = 0.15
    conv = conversation(letta, ivy)
    streamed = [httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages/stream",
                           json={"messages": [user("slow model")]}, timeout=10),
                httpx.post(f"{letta.base_url}/v1/conversations/{conv}/messages",
                           json={"messages": [user("slow model")]}, timeout=10)]
    for answer in streamed:
        got = kinds(events(answer))
        assert got[:4] == ["ping"] * 4 and got[-4:] == ["assistant_message", "end_turn", "usage_statistics", "[DONE]"]


def test_a_gateway_in_front_forwards_the_send_then_answers_its_own_error(letta: FakeLetta) -> None:
    """`gateway_next`: Letta runs the forwarded send to its end and stores it; the client gets the gateway's status,
    bytes and headers, and the gateway's hop is not counted as a second request."""
    ivy = letta.add_agent("ivy")
    page = b"<html><title>524: A timeout occurred</title></html>"
    letta.gateway_next("POST", rf"/v1/agents/{ivy}/messages", 524, page, {"server": "cloudflare", "cf-ray": "8f1d-AMS"})
    got = httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages", json={"messages": [user("through the gateway")]})
    assert (got.status_code, got.content, got.headers["server"], got.headers["cf-ray"]) == (
        524, page, "cloudflare", "8f1d-AMS")
    assert len(letta.sends()) == 1 and [i.text for i in letta.inputs] == ["through the gateway"]
    assert [m["content"] for m in letta.history[ivy] if m["message_type"] == "assistant_message"] == ["ivy says hi"]


@pytest.mark.parametrize("letta", ["0.11.7", "0.16.8"], indirect=True)
def test_a_memory_save_before_the_reply_is_stored_as_the_real_server_stores_it(letta: FakeLetta) -> None:
    """reference §24: after the user's message, 0.11.7 stores the tool call, its return and a heartbeat user message
    before the answer, and its send's answer lists no heartbeat; 0.16.8 stores the call and its return only."""
    version = letta.version
    alice = letta.add_agent("alice")
    letta.set_saves_memory(alice)
    otid = str(uuid.uuid4())
    sent = httpx.post(f"{letta.base_url}/v1/agents/{alice}/messages",
                      json={"messages": [{"role": "user", "content": "please remember I like tea", "otid": otid}]})
    history = httpx.get(f"{letta.base_url}/v1/agents/{alice}/messages", params={"limit": 100}).json()

    def after(messages: list[dict[str, Any]]) -> list[str]:
        """The types after the sent user message (the one with an otid), if it is listed."""
        start = next((i + 1 for i, m in enumerate(messages) if m["message_type"] == "user_message" and m["otid"]), 0)
        return [m["message_type"] for m in messages[start:]]

    real_sent = cap(version, "agents-send-memory-heartbeat")["response"]["body"]["messages"]
    real_history = cap(version, "agents-history-memory-heartbeat")["response"]["body"]
    assert after(sent.json()["messages"]) == after(real_sent)
    assert after(history) == after(real_history), history
    assert next(m["otid"] for m in history if m["message_type"] == "user_message") == otid
