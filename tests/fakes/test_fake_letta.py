"""Self-tests of the fake Letta server: it must answer what the captured real servers answered.

Where possible, a test replays a captured request verbatim and compares the fake's answer with the
real one. The fake is seeded with the captured agent and group ids, so ids, names and error texts
match too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta

CAPTURED = ("0.11.7", "0.16.4", "0.16.8")  # versions with agent-level captures
BODY = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}],
                      "otid": "2f7e0a44-5d0b-4c55-9d35-8d0c8f0a1b2c", "name": "maria"}]}
AGENT_NAMES = ("alice", "bob", "carol", "mgr_sup", "mgr_dyn")
VOLATILE = {"id", "date", "otid", "step_id", "run_id"}  # differ on every real run as well


def cap(version: str, name: str) -> dict[str, Any]:
    """One capture file, read fresh."""
    data: dict[str, Any] = json.loads((S.CAPTURES_DIR / version / f"{name}.json").read_text())
    return data


def cap_files(version: str, prefix: str) -> list[str]:
    return sorted(p.stem for p in (S.CAPTURES_DIR / version).glob(f"{prefix}*.json"))


@pytest.fixture
def make() -> Iterator[Callable[..., FakeLetta]]:
    """Start fakes on demand; stop them all at the end, even when the test fails."""
    started: list[FakeLetta] = []

    def _make(version: str = "0.11.7", api_key: str | None = None) -> FakeLetta:
        fake = FakeLetta(version, api_key=api_key)
        fake.start()
        started.append(fake)
        return fake

    yield _make
    for fake in started:
        fake.stop()


def seed(fake: FakeLetta, version: str) -> dict[str, str]:
    """Create the captured agents and groups with their real ids; return name/manager_type -> id."""
    ids: dict[str, str] = {}
    for name in AGENT_NAMES:
        created = cap(version, "agents-create" if name == "alice" else f"agents-create-{name}")["response"]["body"]
        ids[name] = fake.add_agent(created["name"], agent_id=created["id"])
    for kind in S.MANAGER_TYPES:
        g = cap(version, f"groups-get-{kind}")["response"]["body"]
        ids[kind] = fake.add_group(g["agent_ids"], kind, g["description"], group_id=g["id"],
                                   manager_agent_id=g["manager_agent_id"], max_turns=g["max_turns"],
                                   termination_token=g["termination_token"])
    return ids


def replay(fake: FakeLetta, exchange: dict[str, Any], **headers: str) -> httpx.Response:
    """Send a captured request as it was sent (JSON body or raw text)."""
    req = exchange["request"]
    content = None
    if req.get("body") is not None:
        content = json.dumps(req["body"]).encode()
    elif req.get("body_raw"):
        content = req["body_raw"].encode()
    hdrs = {**req["headers"], **headers}
    return httpx.request(req["method"], fake.base_url + req["path"], content=content, headers=hdrs, timeout=5)


def assert_same_answer(resp: httpx.Response, exchange: dict[str, Any]) -> None:
    real = exchange["response"]
    assert resp.status_code == real["status"]
    assert resp.json() == real["body"]
    if isinstance(real["body"], dict):  # key order too, not just equality
        assert list(resp.json()) == list(real["body"])
    for name, value in real["headers"]:
        if name in ("allow", "content-type", "vary"):
            assert resp.headers.get(name) == value, name


def assert_like_capture(got: dict[str, Any], real: dict[str, Any]) -> None:
    """Same message: keys in the same order, equal values except the per-run ids."""
    assert list(got) == list(real)
    assert {k: v for k, v in got.items() if k not in VOLATILE} == {k: v for k, v in real.items() if k not in VOLATILE}
    assert (got["step_id"] is None) == (real["step_id"] is None)
    assert (got["run_id"] is None) == (real["run_id"] is None)


def assert_otid_rule(messages: list[dict[str, Any]]) -> None:
    """Reply otids are the message uuid with the low bits replaced by the index within that message id."""
    index: dict[str, int] = {}
    for m in messages:
        i = index.get(m["id"], 0)
        index[m["id"]] = i + 1
        assert m["otid"] == S.otid_from_id(m["id"], i)


def post(fake: FakeLetta, path: str, body: Any = None, timeout: float = 5) -> httpx.Response:
    return httpx.post(fake.base_url + path, json=BODY if body is None else body, timeout=timeout)


def get(fake: FakeLetta, path: str, **params: Any) -> httpx.Response:
    return httpx.get(fake.base_url + path, params=params, timeout=5)


# --------------------------------------------------------------------------------------------- health, auth
@pytest.mark.parametrize("version", S.VERSIONS)
def test_health_and_redirect_match_the_capture(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    assert_same_answer(replay(fake, cap(version, "health")), cap(version, "health"))
    redirect = httpx.get(fake.base_url + "/v1/health", timeout=5)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == fake.base_url + "/v1/health/"
    assert redirect.content == b""


@pytest.mark.parametrize("version", ["0.11.7", "0.16.8"])
def test_auth_captures_replay(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version, api_key="capture-secret")
    seed(fake, version)
    for name in cap_files(version, "auth-"):
        exchange = cap(version, name)
        resp = replay(fake, exchange)
        if exchange["response"]["status"] == 200 and name != "auth-health-unauthenticated":
            assert resp.status_code == 200, name
        else:
            assert_same_answer(resp, exchange)
    assert len(fake.requests) == len(cap_files(version, "auth-"))  # 401s are recorded too


# --------------------------------------------------------------------------------------------- errors
def _error_cases() -> list[tuple[str, str]]:
    return [(v, n) for v in CAPTURED for n in cap_files(v, "error-") if "-stream-" not in n]


@pytest.mark.parametrize(("version", "name"), _error_cases())
def test_error_captures_replay_exactly(make: Callable[..., FakeLetta], version: str, name: str) -> None:
    fake = make(version)
    seed(fake, version)
    assert_same_answer(replay(fake, cap(version, name)), cap(version, name))


@pytest.mark.parametrize("version", ["0.12.1", "0.16.4", "0.16.8"])
def test_group_sends_fail_as_captured(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    seed(fake, version)
    for name in cap_files(version, "groups-send-"):
        assert_same_answer(replay(fake, cap(version, name)), cap(version, name))
    assert fake.inputs == []


@pytest.mark.parametrize("version", ["0.12.1", "0.16.4", "0.16.8"])
def test_group_send_failure_does_not_depend_on_the_id(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    unknown = post(fake, f"/v1/groups/{S.new_id('group')}/messages")
    expected = {"0.12.1": 500, "0.16.4": 404, "0.16.8": 405}[version]  # 0.16.4 checks the id first (captured)
    assert unknown.status_code == expected
    if version == "0.16.8":
        assert unknown.headers["allow"] == "GET"
        assert post(fake, "/v1/groups/whatever/messages", body={"junk": 1}).status_code == 405


def test_unknown_group_names_the_id_like_the_real_server(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    gid = S.new_id("group")
    for resp in (get(fake, f"/v1/groups/{gid}"), post(fake, f"/v1/groups/{gid}/messages")):
        assert resp.status_code == 404
        detail = resp.json()["detail"]
        assert detail.startswith(f"Group not found with id='['{gid}']', access level in ['read'] for actor=")
    real = cap("0.11.7", "error-group-get-unknown-wellformed")["response"]["body"]["detail"]
    assert detail == real.replace(S.UNKNOWN_GROUP_ID, gid)


def test_other_validation_errors_keep_the_version_style(make: Callable[..., FakeLetta]) -> None:
    old, new = make("0.11.7"), make("0.16.8")
    for fake in (old, new):
        aid = fake.add_agent("alice")
        resp = httpx.post(f"{fake.base_url}/v1/agents/{aid}/messages", content=b'{"messages": ]', timeout=5)
        assert resp.status_code == 422
        detail = resp.json()["detail"]
        if fake is old:
            assert detail[0]["loc"] == ["body", 13] and detail[0]["type"] == "json_invalid"
        else:
            assert isinstance(detail, str) and "('body', 13)" in detail and resp.json()["trace_id"] == ""


# --------------------------------------------------------------------------------------------- agent sends
@pytest.mark.parametrize("version", CAPTURED)
def test_agent_send_shape_matches_the_capture(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    seed(fake, version)
    exchange = cap(version, "agents-send")
    resp = replay(fake, exchange)
    real = exchange["response"]["body"]
    got = resp.json()
    assert resp.status_code == 200 and list(got) == list(real)
    assert got["usage"] == real["usage"] and got["stop_reason"] == real["stop_reason"]
    assert len(got["messages"]) == len(real["messages"])
    for mine, theirs in zip(got["messages"], real["messages"], strict=True):
        assert_like_capture(mine, theirs)
    assert_otid_rule(got["messages"])


def test_agent_send_on_0_12_1_borrows_the_0_11_7_shape(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.12.1")
    aid = fake.add_agent("alice")
    got = post(fake, f"/v1/agents/{aid}/messages").json()
    real = cap("0.11.7", "agents-send")["response"]["body"]
    assert list(got) == list(real)
    assert [list(m) for m in got["messages"]] == [list(m) for m in real["messages"]]


@pytest.mark.parametrize("version", S.VERSIONS)
def test_agent_get_has_the_captured_keys(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    aid = fake.add_agent("zoe")
    got = get(fake, f"/v1/agents/{aid}").json()
    assert list(got) == list(cap(version, "agents-get")["response"]["body"])
    assert (got["id"], got["name"], got["tags"], got["description"]) == (aid, "zoe", [], None)
    listed = get(fake, "/v1/agents/", limit=5).json()
    assert [a["id"] for a in listed] == [aid]


def test_reply_options_callable_list_and_silence(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.16.8")
    aid = fake.add_agent("echo")
    fake.set_reply(aid, lambda text: [f"1: {text}", "2"])
    msgs = post(fake, f"/v1/agents/{aid}/messages").json()["messages"]
    assert [m["content"] for m in msgs] == ["1: hello there", "2"]
    assert len({m["step_id"] for m in msgs}) == 2 and len({m["run_id"] for m in msgs}) == 1
    fake.set_reply(aid, [])
    got = post(fake, f"/v1/agents/{aid}/messages").json()
    assert got["messages"] == [] and got["usage"]["step_count"] == 1


def test_inputs_record_otid_name_and_text(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.16.8")
    aid = fake.add_agent("alice")
    body = {"messages": [{"role": "user", "content": "first", "otid": "o-1", "name": "maria"},
                         {"role": "user", "content": [{"type": "text", "text": "second"}]}]}
    assert post(fake, f"/v1/agents/{aid}/messages", body).status_code == 200
    [inp] = fake.inputs
    assert (inp.agent_id, inp.agent_name, inp.text) == (aid, "alice", "first\nsecond")
    assert (inp.otid, inp.name) == ("o-1", "maria")
    assert inp.messages == body["messages"] and inp.finished is not None and inp.finished >= inp.started
    assert [s.path for s in fake.sends()] == [f"/v1/agents/{aid}/messages"]


@pytest.mark.parametrize("version", S.VERSIONS)
def test_history_keeps_the_client_otid_and_name(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    aid = fake.add_agent("alice")
    post(fake, f"/v1/agents/{aid}/messages")
    otid = BODY["messages"][0]["otid"]
    [user] = [m for m in fake.history[aid] if m["message_type"] == "user_message"]
    assert (user["otid"], user["name"], user["content"]) == (otid, "maria", "hello there")
    listed = get(fake, f"/v1/agents/{aid}/messages", limit=50).json()
    assert [m for m in listed if m["message_type"] == "user_message"] == [user]
    assert (listed[0]["message_type"] == "system_message") == version.startswith("0.16")
    real_user = next(m for m in cap(version if version != "0.12.1" else "0.11.7", "agents-history-alice")
                     ["response"]["body"] if m["message_type"] == "user_message")
    assert list(user) == list(real_user)


def test_0_16_8_fills_a_missing_otid_in_history_only(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.16.8")
    aid = fake.add_agent("alice")
    post(fake, f"/v1/agents/{aid}/messages", {"input": "sugar"})
    [user] = [m for m in fake.history[aid] if m["message_type"] == "user_message"]
    assert user["content"] == "sugar" and len(user["otid"]) == 36 and user["name"] is None
    assert fake.inputs[0].otid is None


def test_history_paging_per_version(make: Callable[..., FakeLetta]) -> None:
    for version in ("0.11.7", "0.16.8"):
        fake = make(version)
        aid = fake.add_agent("alice")
        for _ in range(3):
            post(fake, f"/v1/agents/{aid}/messages")
        full = get(fake, f"/v1/agents/{aid}/messages", limit=100).json()
        newest = get(fake, f"/v1/agents/{aid}/messages", limit=3).json()
        asc = get(fake, f"/v1/agents/{aid}/messages", limit=3, order="asc").json()
        assert newest == full[-3:]
        assert asc == (full[-3:] if version == "0.11.7" else full[:3])  # 0.11.7 ignores order
        before = get(fake, f"/v1/agents/{aid}/messages", limit=2, before=full[-1]["id"]).json()
        assert before == [m for m in full if m["id"] != full[-1]["id"]][-2:]
        assert get(fake, f"/v1/agents/{aid}/messages", after=full[-1]["id"]).json() == []


# --------------------------------------------------------------------------------------------- 0.11.7 group sends
@pytest.mark.parametrize("kind", ["round_robin", "dynamic"])
def test_0_11_7_group_send_matches_the_capture(make: Callable[..., FakeLetta], kind: str) -> None:
    fake = make("0.11.7")
    ids = seed(fake, "0.11.7")
    fake.set_reply(ids["mgr_dyn"], "alice")  # the capture's fake LLM always picked alice
    exchange = cap("0.11.7", f"groups-send-{kind}")
    got = replay(fake, exchange).json()
    real = exchange["response"]["body"]
    assert list(got) == list(real) and got["usage"] == real["usage"] and got["stop_reason"] == real["stop_reason"]
    assert len(got["messages"]) == len(real["messages"])
    for mine, theirs in zip(got["messages"], real["messages"], strict=True):
        assert_like_capture(mine, theirs)
        assert mine["step_id"] is None and mine["run_id"] is None
    assert_otid_rule(got["messages"])


def test_0_11_7_supervisor_matches_the_capture(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    seed(fake, "0.11.7")
    exchange = cap("0.11.7", "groups-send-supervisor")
    got = replay(fake, exchange).json()
    real = exchange["response"]["body"]
    assert list(got) == list(real) and list(got["usage"]) == list(real["usage"])
    assert [m["message_type"] for m in got["messages"]] == [m["message_type"] for m in real["messages"]]
    for mine, theirs in zip(got["messages"], real["messages"], strict=True):
        assert list(mine) == list(theirs) and mine["name"] == theirs["name"]
        if theirs["message_type"] == "tool_call_message":
            assert list(mine["tool_call"]) == list(theirs["tool_call"])
            assert mine["tool_call"]["name"] == theirs["tool_call"]["name"]
        if theirs["message_type"] == "tool_return_message":  # same agent ids, same replies -> same text
            assert mine["tool_return"] == theirs["tool_return"] and mine["status"] == "success"
    assert_otid_rule(got["messages"])
    workers = [i for i in fake.inputs if i.agent_name in ("alice", "bob", "carol")]
    assert len(workers) == 3 and all(i.text.startswith("[Incoming message from agent with ID") for i in workers)


def test_round_robin_later_agents_see_earlier_replies(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    a, b, c = (fake.add_agent(n) for n in ("alice", "bob", "carol"))
    gid = fake.add_group([a, b, c])
    fake.set_reply(b, lambda text: "bob read: " + text.replace("\n", " | "))
    got = post(fake, f"/v1/groups/{gid}/messages").json()
    assert [m["name"] for m in got["messages"]] == ["alice", "alice", "bob", "bob", "carol", "carol"]
    assert got["usage"]["step_count"] == 3
    texts = {i.agent_name: i.text for i in fake.inputs}
    assert texts["alice"] == "hello there"
    assert texts["bob"] == "hello there\nalice: alice says hi"
    assert texts["carol"] == "hello there\nalice: alice says hi\nbob: bob read: hello there | alice: alice says hi"
    assert {i.otid for i in fake.inputs} == {BODY["messages"][0]["otid"]}
    alice_history = fake.history[a]
    assert [m["message_type"] for m in alice_history] == ["user_message", "reasoning_message", "assistant_message",
                                                          "system_message", "system_message"]
    assert [m["sender_id"] for m in alice_history[3:]] == [b, c]
    merged = get(fake, f"/v1/groups/{gid}/messages", limit=50).json()
    assert sum(m["message_type"] == "user_message" for m in merged) == 3


def test_dynamic_manager_naming_nobody_fails_like_the_real_server(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    ids = seed(fake, "0.11.7")
    fake.set_reply(ids["mgr_dyn"], "nobody in particular")
    resp = post(fake, f"/v1/groups/{ids['dynamic']}/messages")
    assert_same_answer(resp, cap("0.11.7", "groups-send-dynamic-no-otid"))


def test_dynamic_default_rotates_and_stops_on_the_token(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    a, b = fake.add_agent("alice"), fake.add_agent("bob")
    mgr = fake.add_agent("boss")
    gid = fake.add_group([a, b], "dynamic", manager_agent_id=mgr, max_turns=4)
    fake.set_reply(b, "bob is DONE!")
    got = post(fake, f"/v1/groups/{gid}/messages").json()
    assert [(m["name"], m.get("content")) for m in got["messages"] if m["message_type"] == "assistant_message"] == [
        ("boss", "alice"), ("alice", "alice says hi"), ("boss", "bob"), ("bob", "bob is DONE!")]


def test_sleeptime_group_send_never_answers(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    ids = seed(fake, "0.11.7")
    with pytest.raises(httpx.ReadTimeout):
        post(fake, f"/v1/groups/{ids['sleeptime']}/messages", timeout=0.5)
    fake.wait_for(lambda: any(i.agent_id == ids["carol"] for i in fake.inputs))
    assert fake.sends()[-1].status is None


def test_set_version_switches_group_behaviour(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    a = fake.add_agent("alice")
    gid = fake.add_group([a])
    assert post(fake, f"/v1/groups/{gid}/messages").status_code == 200
    fake.set_version("0.16.8")
    assert post(fake, f"/v1/groups/{gid}/messages").status_code == 405
    assert get(fake, "/v1/health/").json()["version"] == "0.16.8"


# --------------------------------------------------------------------------------------------- groups
@pytest.mark.parametrize("version", S.VERSIONS)
def test_group_get_list_count_match_the_capture(make: Callable[..., FakeLetta], version: str) -> None:
    fake = make(version)
    ids = seed(fake, version)
    for kind in S.MANAGER_TYPES:
        assert_same_answer(get(fake, f"/v1/groups/{ids[kind]}"), cap(version, f"groups-get-{kind}"))
    assert get(fake, "/v1/groups/count").json() == 4
    for name in ("groups-list", "groups-list-limit2", "groups-list-order-desc", "groups-list-manager_type"):
        got = replay(fake, cap(version, name)).json()
        assert [g["id"] for g in got] == [g["id"] for g in cap(version, name)["response"]["body"]], name
    if version != "0.11.7":  # 0.11.7 answered [] to `after` (captured); the others page
        got = replay(fake, cap(version, "groups-list-after")).json()
        assert [g["id"] for g in got] == [g["id"] for g in cap(version, "groups-list-after")["response"]["body"]]


# --------------------------------------------------------------------------------------------- concurrency
def _send_in_thread(fake: FakeLetta, path: str, out: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(post(fake, path).status_code))
    thread.start()
    return thread


def test_concurrent_sends_to_one_agent_are_reported_as_overlap(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.16.8")
    aid, other = fake.add_agent("alice"), fake.add_agent("bob")
    fake.set_delay(aid, 0.3)
    statuses: list[int] = []
    threads = [_send_in_thread(fake, f"/v1/agents/{x}/messages", statuses) for x in (aid, aid, other)]
    for thread in threads:
        thread.join()
    assert statuses == [200, 200, 200]
    [(agent_id, first, second)] = fake.overlaps
    assert agent_id == aid and first.agent_id == second.agent_id == aid and first.started <= second.started


def test_sequential_sends_do_not_overlap(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    aid = fake.add_agent("alice")
    gid = fake.add_group([aid])
    fake.set_delay(aid, 0.1)
    for path in (f"/v1/agents/{aid}/messages", f"/v1/groups/{gid}/messages", f"/v1/agents/{aid}/messages"):
        assert post(fake, path).status_code == 200
    assert fake.overlaps == [] and len(fake.inputs) == 3
    assert [m["otid"] for m in fake.history[aid] if m["message_type"] == "user_message"] == \
        [BODY["messages"][0]["otid"]] * 3


def test_concurrent_group_sends_overlap_on_the_members(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    aid = fake.add_agent("alice")
    gid = fake.add_group([aid])
    fake.set_delay(aid, 0.3)
    statuses: list[int] = []
    for thread in [_send_in_thread(fake, f"/v1/groups/{gid}/messages", statuses) for _ in range(2)]:
        thread.join()
    assert statuses == [200, 200] and len(fake.overlaps) == 1


# --------------------------------------------------------------------------------------------- injection
def test_fail_next_takes_precedence_then_expires(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.16.8")
    aid = fake.add_agent("alice")
    fake.fail_next("POST", r"/v1/agents/[^/]+/messages", 503, body={"detail": "busy"}, headers={"retry-after": "1"})
    fake.fail_next("post", r"/v1/agents/[^/]+/messages", 500, delay=0.2)
    fake.fail_next("GET", r"/v1/health/", 502, raw=b"<html>bad gateway</html>", headers={"content-type": "text/html"})
    first = post(fake, f"/v1/agents/{aid}/messages")
    assert (first.status_code, first.json(), first.headers["retry-after"]) == (503, {"detail": "busy"}, "1")
    started = time.monotonic()
    second = post(fake, f"/v1/agents/{aid}/messages")
    assert second.status_code == 500 and second.json() == {"detail": "An internal server error occurred"}
    assert time.monotonic() - started >= 0.2
    assert post(fake, f"/v1/agents/{aid}/messages").status_code == 200
    health = get(fake, "/v1/health/")
    assert (health.status_code, health.content, health.headers["content-type"]) == (
        502, b"<html>bad gateway</html>", "text/html")
    assert [r.status for r in fake.requests] == [503, 500, 200, 502]
    assert len(fake.inputs) == 1  # injected failures never reach the agent


def test_hang_next_never_answers_until_stop(make: Callable[..., FakeLetta]) -> None:
    fake = make("0.11.7")
    aid = fake.add_agent("alice")
    fake.hang_next("GET", r"/v1/agents/.*", times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fake.base_url}/v1/agents/{aid}", timeout=0.3)
    assert get(fake, f"/v1/agents/{aid}").status_code == 200
    hung = fake.requests[0]
    assert hung.status is None and hung.finished is None and hung.path == f"/v1/agents/{aid}"
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 5
