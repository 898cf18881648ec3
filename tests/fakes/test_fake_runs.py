"""Self-tests of what the fake Letta does while a step runs, each against the capture that shows it on a real server
(reference/letta/README.md sections 14 and 19)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.letta import FakeLetta
from tests.fakes.test_fake_conversations import events
from tests.fakes.test_fake_letta import cap


def user(text: str, otid: str | None = None) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "otid": otid or str(uuid.uuid4()),
            "name": "maria"}


def meanwhile(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def letta(request: pytest.FixtureRequest) -> Iterator[FakeLetta]:
    version, _, redis = str(getattr(request, "param", "0.16.8")).partition("+")
    fake = FakeLetta(version, redis=redis == "redis")
    fake.start()
    yield fake
    fake.stop()


def user_otids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["otid"] for m in messages if m["message_type"] == "user_message" and m.get("otid")]


@pytest.mark.parametrize("letta", ["0.11.7", "0.16.8"], indirect=True)
def test_the_user_message_lands_when_the_step_ends_and_the_run_is_active_meanwhile(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 1.0)
    message = user("visible when?")
    sender = meanwhile(lambda: httpx.post(f"{letta.base_url}/v1/agents/{ivy}/messages",
                                          json={"messages": [message]}, timeout=10))
    letta.wait_for(lambda: bool(letta.inputs))
    during = httpx.get(f"{letta.base_url}/v1/agents/{ivy}/messages").json()
    if letta.version == "0.11.7":
        listed = httpx.get(f"{letta.base_url}/v1/runs/active", params={"agent_ids": ivy}).json()
    else:
        listed = httpx.get(f"{letta.base_url}/v1/runs/", params={"agent_id": ivy, "active": "true"}).json()
    real = cap(letta.version, "runs-active-during-send")["response"]["body"]
    assert message["otid"] not in user_otids(during)  # visible-agents-history-during-send
    assert [list(r) for r in listed] == [list(r) for r in real] and listed[0]["status"] == real[0]["status"]
    sender.join()
    after = httpx.get(f"{letta.base_url}/v1/agents/{ivy}/messages").json()
    assert message["otid"] in user_otids(after)  # visible-agents-history-after-send
    assert letta.active_runs() == []  # runs-active-after-send


def test_a_0_11_7_group_send_lists_no_run_and_each_member_has_the_message_after_its_own_step() -> None:
    with FakeLetta("0.11.7") as letta:
        jay, kit = letta.add_agent("jay"), letta.add_agent("kit")
        group = letta.add_group([jay, kit])
        letta.set_delay(jay, 0.6), letta.set_delay(kit, 0.6)
        message = user("group visible when?")
        sender = meanwhile(lambda: httpx.post(f"{letta.base_url}/v1/groups/{group}/messages",
                                              json={"messages": [message]}, timeout=10))
        letta.wait_for(lambda: bool(letta.inputs))
        assert httpx.get(f"{letta.base_url}/v1/runs/active", params={"agent_ids": [jay, kit]}).json() == []
        assert message["otid"] not in user_otids(letta.history[jay])
        letta.wait_for(lambda: len(letta.inputs) == 2)
        assert message["otid"] in user_otids(letta.history[jay]) and message["otid"] not in user_otids(
            letta.history[kit])
        sender.join()


def test_a_0_11_7_direct_send_to_a_supervisor_manager_runs_its_group() -> None:
    real = cap("0.11.7", "agents-send-supervisor-manager")["response"]["body"]["messages"]
    with FakeLetta("0.11.7") as letta:
        lou, max_ = letta.add_agent("lou"), letta.add_agent("max")
        ned = letta.add_agent("ned")
        letta.add_group([lou, max_], "supervisor", manager_agent_id=ned)
        answer = httpx.post(f"{letta.base_url}/v1/agents/{ned}/messages", json={"messages": [user("just you")]})
        got = answer.json()["messages"]
        assert [m["message_type"] for m in got] == [m["message_type"] for m in real]
        assert sorted(i.agent_name for i in letta.inputs) == ["lou", "max", "ned"]


def test_0_16_8_never_ends_a_non_streamed_conversation_send_s_run(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    body = {"messages": [user("default, not streamed")], "agent_id": ivy, "streaming": False}
    assert httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json=body).status_code == 200
    listed = httpx.get(f"{letta.base_url}/v1/runs/", params={"agent_id": ivy, "active": "true"}).json()
    assert [(r["status"], r["conversation_id"]) for r in listed] == [("created", None)]  # runs-active-default-…
    streamed = {"messages": [user("default, streamed")], "agent_id": ivy}
    assert httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json=streamed).status_code == 200
    assert len(httpx.get(f"{letta.base_url}/v1/runs/", params={"agent_id": ivy, "active": "true"}).json()) == 1


def test_the_resume_route_needs_redis(letta: FakeLetta) -> None:
    real = cap("0.16.8", "conversations-stream-resume-without-redis")["response"]
    answer = httpx.post(f"{letta.base_url}/v1/conversations/default/stream", json={"agent_id": letta.add_agent("a")})
    assert (answer.status_code, answer.json()) == (real["status"], real["body"])


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_busy_thread_answers_409_naming_the_running_run(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 0.8)
    first = meanwhile(lambda: httpx.post(f"{letta.base_url}/v1/conversations/default/messages",
                                         json={"messages": [user("A")], "agent_id": ivy}, timeout=10))
    letta.wait_for(lambda: bool(letta.inputs))
    second = httpx.post(f"{letta.base_url}/v1/conversations/default/messages",
                        json={"messages": [user("B")], "agent_id": ivy, "streaming": False})
    real = cap("0.16.8", "concurrent-redis-conversations-default-agent-direct")["second"]["response"]
    assert second.status_code == real["status"] == 409
    assert second.json()["run_id"] == letta.active_runs()[0] and list(second.json()) == list(real["body"])
    first.join()


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_same_otid_background_retry_is_attached_and_the_stream_resumes(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 0.8)
    conv = httpx.post(f"{letta.base_url}/v1/conversations/", params={"agent_id": ivy}, json={}).json()["id"]
    body = {"messages": [user("background")], "background": True}
    url = f"{letta.base_url}/v1/conversations/{conv}/messages"
    answers: list[httpx.Response] = []
    first = meanwhile(lambda: answers.append(httpx.post(url, json=body, timeout=10)))
    letta.wait_for(lambda: bool(letta.inputs))
    retry = httpx.post(url, json=body, timeout=10)  # concurrent-redis-conversations-same-otid-background
    first.join()
    assert len(letta.inputs) == 1
    assert events(retry) == events(answers[0])
    got = events(retry)
    assert [e["seq_id"] for e in got if isinstance(e, dict) and "seq_id" in e] == [1, 2]
    otid = body["messages"][0]["otid"]  # type: ignore[index]
    resumed = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/stream", json={"otid": otid, "starting_after": 1})
    real = cap("0.16.8", "redis-conversations-stream-resume-by-otid-starting-after")["response"]["events"]
    assert [e["message_type"] if isinstance(e, dict) else e for e in events(resumed)] == [
        e["data"]["message_type"] if isinstance(e["data"], dict) else e["data"] for e in real]
    idle = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/stream", json={})
    assert idle.status_code == 400  # redis-conversations-stream-resume-idle
    unknown = httpx.post(f"{letta.base_url}/v1/conversations/{conv}/stream", json={"otid": str(uuid.uuid4())})
    assert unknown.status_code == 404  # redis-conversations-stream-resume-unknown-otid


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_background_run_goes_on_when_its_request_is_gone(letta: FakeLetta) -> None:
    ivy = letta.add_agent("ivy")
    letta.set_delay(ivy, 0.5)
    body = {"messages": [user("gone")], "agent_id": ivy, "background": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json=body, timeout=0.2)
    time.sleep(0.8)
    assert user_otids(letta.history[ivy]) == [body["messages"][0]["otid"]]  # type: ignore[index]
    assert letta.active_runs() == []


def test_0_16_8_lists_the_default_thread_oldest_first_whatever_the_order(letta: FakeLetta) -> None:
    real = cap("0.16.8", "visible-conversations-default-history-during-send")
    assert real["request"]["path"].endswith("order=desc")
    assert [m["message_type"] for m in real["response"]["body"]][:2] == ["system_message", "user_message"]
    ivy = letta.add_agent("ivy")
    body = {"messages": [user("default thread")], "agent_id": ivy}
    assert httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json=body).status_code == 200
    listed = httpx.get(f"{letta.base_url}/v1/conversations/default/messages",
                       params={"agent_id": ivy, "order": "desc"}).json()
    assert [m["message_type"] for m in listed] == ["user_message", "assistant_message"]


def _shape(events: list[Any]) -> list[Any]:
    return [(e["message_type"], e.get("seq_id")) if isinstance(e, dict) else e for e in events]


@pytest.mark.parametrize("letta", ["0.16.8+redis"], indirect=True)
def test_with_redis_a_background_run_that_asks_for_approval_is_re_attached_with_its_request(letta: FakeLetta) -> None:
    finn = letta.add_agent("finn")
    letta.ask_approval(finn, ("shout", '{"message": "ok"}'), said="Let me do that.")
    message = user("[say first] please use tool shout")
    body = {"messages": [message], "streaming": True, "background": True, "agent_id": finn}
    sent = httpx.post(f"{letta.base_url}/v1/conversations/default/messages", json=body, timeout=10)
    resume = {"otid": message["otid"], "agent_id": finn}
    url = f"{letta.base_url}/v1/conversations/default/stream"
    again = httpx.post(url, json=resume, timeout=10)
    after = httpx.post(url, json={**resume, "starting_after": 1}, timeout=10)
    for answer, name in ((sent, "approval-background-send-stream"), (again, "approval-stream-resume-by-otid"),
                         (after, "approval-stream-resume-starting-after")):
        real = [e["data"] for e in cap("0.16.8", f"redis-{name}")["response"]["events"]]
        assert _shape(events(answer)) == _shape(real), name
    assert events(again) == events(sent)
    history = httpx.get(f"{letta.base_url}/v1/conversations/default/messages", params={"agent_id": finn}).json()
    real_history = cap("0.16.8", "redis-approval-history-after-background")["response"]["body"]
    kinds = [m["message_type"] for m in real_history]
    assert [m["message_type"] for m in history] == kinds[kinds.index("user_message"):]  # the fake lists no system
