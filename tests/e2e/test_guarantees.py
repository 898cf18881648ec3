"""Nothing lost, nothing twice: retries, kill -9, SIGTERM, outages, hostile input. Each test counts Letta turns
(what the fake Letta's agents actually ran) and Slack posts."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import httpx
import pytest

from tests.e2e.conftest import backend_env
from tests.e2e.harness import SIGNING_SECRET, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, event_body, mention_event, signed_headers, slack_signature
from tests.fakes.slack import Call, FakeSlack
from tests.quoting import said


@dataclass
class Rig:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    agents: dict[str, str]
    channel: str

    def turns_of(self, name: str) -> int:
        return sum(1 for i in self.letta.inputs if i.agent_id == self.agents[name])

    def replies(self, ts: str) -> list[str]:
        return [p.args["username"] for p in self.slack.posts(self.channel, ts) if p.args.get("username")]


def rig(
    tmp_path: Path, version: str, names: tuple[str, ...] = ("alice", "bob", "carol"), redis: bool = False, **env: str
) -> Rig:
    slack, letta = FakeSlack(), FakeLetta(version=version, redis=redis)
    slack.start(), letta.start()
    agents = {n: letta.add_agent(n) for n in names}
    group = letta.add_group(list(agents.values()))
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **env)
    assert run_cli(settings, "channels", "connect", "C0GUARD01", group).returncode == 0
    bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
    return Rig(slack, letta, bridge, agents, "C0GUARD01")


@pytest.fixture(
    params=[
        ("0.11.7", "sqlite"),
        ("0.16.8", "sqlite"),
        ("0.16.8", "postgres"),
        ("0.16.8", "conversations"),
        ("0.16.8", "redis"),
    ],
    ids=[
        "server-runner",
        "bridge-runner",
        "bridge-runner-postgres",
        "bridge-runner-conversations",
        "bridge-runner-redis",
    ],
)
def guarded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The server runner, the bridge runner on each backend, and the bridge runner with each thread a Letta
    conversation (its sends and look-ups go to the conversation routes)."""
    version, backend = request.param
    settings = {"LETTA_CONVERSATIONS": "true"} if backend == "conversations" else {}
    settings.update(backend_env(request, backend) if backend in ("sqlite", "postgres") else {})
    if version == "0.11.7":  # a group send lists no run: how long the members are watched after a restart
        settings["LETTA_RECOVERY_WAIT_SECONDS"] = "6"
    r = rig(tmp_path, version, redis=backend == "redis", **settings)
    yield r
    r.bridge.stop()
    r.letta.stop()
    r.slack.stop()


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_a_retry_after_a_restart_still_runs_once(guarded: Rig) -> None:
    event = mention_event("once", channel=guarded.channel)
    body = event_body(event, event_id="EvONCE0001")
    assert guarded.bridge.post(body).status_code == 200
    guarded.slack.wait_for(lambda: len(guarded.replies(event["ts"])) == 3, 10)
    guarded.bridge.restart()
    retry = guarded.bridge.post(body, timestamp=int(time.time()) + 2, **{"X-Slack-Retry-Num": "2"})
    assert retry.status_code == 200
    as_message = dict(event, type="message")
    assert guarded.bridge.post(event_body(as_message, event_id="EvONCE0002")).status_code == 200
    time.sleep(0.5)
    assert [guarded.turns_of(n) for n in ("alice", "bob", "carol")] == [1, 1, 1]
    assert guarded.replies(event["ts"]) == ["alice", "bob", "carol"]


@pytest.mark.slow
def test_kill_9_during_a_send_then_restart_neither_loses_nor_repeats(guarded: Rig) -> None:
    """Restarted while alice is still answering: her message is not in Letta's history yet (a real server stores it
    when the step ends), so only the active run says the send happened. Alice takes long enough for a restart on
    a loaded machine (one took over 4 s here, over 5 s on a slower day with four workers on two cores), and for
    the server runner less than its LETTA_RECOVERY_WAIT_SECONDS (6), past which an unseen group send counts as
    never made."""
    server_runner = guarded.letta.version == "0.11.7"
    guarded.letta.set_delay(guarded.agents["alice"], 5.0 if server_runner else 9.0)
    event, _ = guarded.bridge.mention("survive this", guarded.channel)
    guarded.letta.wait_for(lambda: any(i.agent_name == "alice" for i in guarded.letta.inputs), 10)
    guarded.bridge.kill()
    guarded.bridge.restart()
    assert not all(i.finished for i in guarded.letta.inputs), "the bridge must be back before alice has answered"
    guarded.slack.wait_for(lambda: len(guarded.replies(event["ts"])) == 3, 30)
    time.sleep(0.5)
    assert [guarded.turns_of(n) for n in ("alice", "bob", "carol")] == [1, 1, 1]
    assert guarded.replies(event["ts"]) == ["alice", "bob", "carol"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_between_two_agents_resumes_at_the_next_agent(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    r = rig(tmp_path, "0.16.8", **backend_env(request, backend))
    try:
        r.letta.set_delay(r.agents["bob"], 1.5)
        event, _ = r.bridge.mention("relay race", r.channel)
        r.slack.wait_for(lambda: r.replies(event["ts"]) == ["alice"], 10)
        r.letta.wait_for(lambda: any(i.agent_name == "bob" for i in r.letta.inputs), 10)
        r.bridge.kill()
        r.bridge.restart()
        r.slack.wait_for(lambda: len(r.replies(event["ts"])) == 3, 20)
        time.sleep(0.5)
        assert [r.turns_of(n) for n in ("alice", "bob", "carol")] == [1, 1, 1]
        assert r.replies(event["ts"]) == ["alice", "bob", "carol"]
        [carol] = [i for i in r.letta.inputs if i.agent_name == "carol"]
        assert said("alice", "alice says hi") in carol.text and said("bob", "bob says hi") in carol.text
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_a_send_letta_never_saw_is_sent_again_after_a_crash(guarded: Rig) -> None:
    """Where the send is an agent's run, "no run going and nothing in history" proves it never reached the agent.
    A 0.11.x group send is no run: no member has it the recovery wait after it was sent, so it never reached Letta."""
    agents = r"/v1/(agents|conversations)/[^/]+/messages(/stream)?"
    group = r"/v1/groups/[^/]+/messages(/stream)?"
    guarded.letta.hang_next("POST", group if guarded.letta.version == "0.11.7" else agents)
    event, _ = guarded.bridge.mention("lost in transit", guarded.channel)
    guarded.letta.wait_for(lambda: len(guarded.letta.sends()) == 1, 10)
    guarded.bridge.kill()
    guarded.bridge.restart()
    guarded.slack.wait_for(lambda: len(guarded.replies(event["ts"])) == 3, 20)
    assert [guarded.turns_of(n) for n in ("alice", "bob", "carol")] == [1, 1, 1]


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_sigterm_finishes_the_turn_in_flight_and_exits_0(guarded: Rig) -> None:
    guarded.letta.set_delay(guarded.agents["alice"], 1.0)
    event, _ = guarded.bridge.mention("finish me", guarded.channel)
    guarded.letta.wait_for(lambda: len(guarded.letta.inputs) >= 1, 10)
    assert guarded.bridge.stop() == 0
    assert guarded.replies(event["ts"]) == ["alice", "bob", "carol"]


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_sigterm_past_the_grace_period_records_the_turn_and_the_next_start_ends_it(tmp_path: Path) -> None:
    r = rig(tmp_path, "0.16.8", ("alice", "bob"), SHUTDOWN_GRACE_SECONDS="0.5")
    try:
        r.letta.set_delay(r.agents["bob"], 2.0)
        event, _ = r.bridge.mention("long one", r.channel)
        r.letta.wait_for(lambda: any(i.agent_name == "bob" for i in r.letta.inputs), 10)
        assert r.bridge.stop() == 0
        assert "recorded for the next start" in r.bridge.logs()
        r.letta.wait_for(lambda: all(i.finished for i in r.letta.inputs), 10)
        r.bridge.start(tmp_path / "again.log")
        r.slack.wait_for(lambda: len(r.replies(event["ts"])) == 2, 20)
        assert [r.turns_of("alice"), r.turns_of("bob")] == [1, 1]
        assert r.replies(event["ts"]) == ["alice", "bob"]
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_letta_refusals_that_ran_nothing_are_retried_and_the_others_are_not(guarded: Rig) -> None:
    route = (
        r"/v1/groups/[^/]+/messages(/stream)?"
        if guarded.letta.version == "0.11.7"
        else r"/v1/(agents|conversations)/[^/]+/messages(/stream)?"
    )
    guarded.letta.fail_next("POST", route, 429, {"detail": "slow down"}, headers={"retry-after": "0"})
    gateway = b"no healthy upstream"  # Envoy's own, with nowhere to send the request: answered before Letta
    guarded.letta.fail_next("POST", route, 503, raw=gateway, headers={"content-type": "text/plain"})
    event, _ = guarded.bridge.mention("try again", guarded.channel)
    guarded.slack.wait_for(lambda: len(guarded.replies(event["ts"])) == 3, 10)
    assert [guarded.turns_of(n) for n in ("alice", "bob", "carol")] == [1, 1, 1]
    guarded.letta.fail_next("POST", route, 502, {"detail": "bad gateway"})
    event, _ = guarded.bridge.mention("gateway", guarded.channel)
    guarded.slack.wait_for(
        lambda: any("HTTP 502" in p.args["text"] for p in guarded.slack.posts(guarded.channel, event["ts"])), 10
    )
    assert len([s for s in guarded.letta.sends() if s.status == 502]) == 1
    guarded.slack.wait_for(lambda: "warning" in guarded.slack.reactions(guarded.channel, event["ts"]), 10)
    # Letta's own 429 from inside the agent loop (letta/server/rest_api/app.py): the steps before it are stored.
    model_limited = {"error": {"type": "llm_rate_limit", "message": "Rate limit exceeded for LLM model provider.",
                               "detail": "429 from the provider"}}
    guarded.letta.fail_next("POST", route, 429, model_limited)
    event, _ = guarded.bridge.mention("busy model", guarded.channel)
    guarded.slack.wait_for(
        lambda: any("model provider is rate-limiting" in p.args["text"]
                    for p in guarded.slack.posts(guarded.channel, event["ts"])), 10
    )
    assert len([s for s in guarded.letta.sends() if s.status == 429]) == 2, "the gateway's retried; Letta's not"


def test_slack_rate_limit_and_server_errors_post_each_reply_exactly_once(guarded: Rig) -> None:
    guarded.slack.fail_next("chat.postMessage", error="ratelimited", status=429, headers={"retry-after": "1"})
    guarded.slack.fail_next("chat.postMessage", error="internal_error", status=500, times=1)
    event, _ = guarded.bridge.mention("post carefully", guarded.channel)
    guarded.slack.wait_for(lambda: len(guarded.replies(event["ts"])) == 3, 20)
    time.sleep(0.3)
    assert guarded.replies(event["ts"]) == ["alice", "bob", "carol"]


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
def test_a_channel_the_bot_cannot_post_in_fails_the_turn_plainly_in_the_logs(guarded: Rig, error: str) -> None:
    guarded.slack.fail_next("chat.postMessage", error=error, times=10)
    event, _ = guarded.bridge.mention("hello?", guarded.channel)
    guarded.slack.wait_for(lambda: "warning" in guarded.slack.reactions(guarded.channel, event["ts"]), 10)
    assert f"slack_error={error} permanent=True" in guarded.bridge.logs()
    assert "Traceback" not in guarded.bridge.logs()
    assert len(guarded.letta.sends()) == 1, "agents kept being asked though nothing could be posted"


def test_a_token_revoked_mid_turn_stops_posting_and_says_why_in_the_logs(tmp_path: Path) -> None:
    r = rig(tmp_path, "0.16.8", ("alice", "bob"))
    try:
        r.letta.set_delay(r.agents["bob"], 1.0)
        event, _ = r.bridge.mention("revoke me", r.channel)
        r.slack.wait_for(lambda: r.replies(event["ts"]) == ["alice"], 10)
        r.slack.set_token_revoked(True)
        r.letta.wait_for(lambda: r.turns_of("bob") == 1 and all(i.finished for i in r.letta.inputs), 10)
        deadline = time.monotonic() + 10
        while "turn cannot post" not in r.bridge.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "slack_error=token_revoked permanent=True" in r.bridge.logs()
        assert "Traceback" not in r.bridge.logs()
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_reply_far_over_slacks_limits_is_split_never_truncated(tmp_path: Path) -> None:
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 60 for i in range(30)]
        long_reply = "\n\n".join(paragraphs)
        assert len(long_reply) > 40_000
        r.letta.set_reply(r.agents["alice"], long_reply)
        event, _ = r.bridge.mention("write a lot", r.channel)
        r.slack.wait_for(lambda: "white_check_mark" in r.slack.reactions(r.channel, event["ts"]), 20)
        parts = [p.args["text"] for p in r.slack.posts(r.channel, event["ts"])]
        assert len(parts) > 10 and all(len(p) <= 4000 for p in parts)
        assert " ".join(parts).split() == long_reply.split(), "a word was lost or changed"
        assert all(p.startswith("Paragraph") for p in parts), "a split fell inside a paragraph"
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = rig(tmp_path_factory.mktemp("hostile"), "0.16.8", ("alice",))
    yield r
    r.bridge.stop(), r.letta.stop(), r.slack.stop()


class TestHostileInput:
    def _no_letta_call(self, target: Rig, response: httpx.Response, status: int) -> None:
        assert response.status_code == status, response.text
        time.sleep(0.2)
        assert target.letta.sends() == []

    def test_old_timestamp(self, target: Rig) -> None:
        body = event_body(mention_event("old", channel=target.channel))
        self._no_letta_call(target, target.bridge.post(body, timestamp=int(time.time()) - 301), 401)

    def test_replayed_request(self, target: Rig) -> None:
        target.letta.set_delay(target.agents["alice"], 0)
        body = event_body(mention_event("replay", channel=target.channel))
        headers = signed_headers(SIGNING_SECRET, body, "application/json")
        first = httpx.post(f"{target.bridge.url}/slack/events", content=body, headers=headers)
        assert first.status_code == 200
        second = httpx.post(f"{target.bridge.url}/slack/events", content=body, headers=headers)
        assert second.status_code == 401 and "replayed" in second.text
        target.letta.wait_for(lambda: len(target.letta.sends()) == 1)
        time.sleep(0.3)
        assert len(target.letta.sends()) == 1

    def test_oversized_body(self, target: Rig) -> None:
        before = len(target.letta.sends())
        body = event_body(mention_event("x" * (2 * 1024 * 1024), channel=target.channel))
        response = target.bridge.post(body)
        assert response.status_code == 413
        assert len(target.letta.sends()) == before

    @pytest.mark.parametrize(
        "body,content_type",
        [
            (b"{not json", "application/json"),
            (b"[1, 2]", "application/json"),
            (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
            (b"\xff\xfe", "application/json"),
        ],
    )
    def test_malformed_bodies(self, target: Rig, body: bytes, content_type: str) -> None:
        before = len(target.letta.sends())
        response = target.bridge.post(body, content_type=content_type)
        assert response.status_code == 400
        assert len(target.letta.sends()) == before
        assert "Traceback" not in target.bridge.logs()

    def test_fuzzed_events_and_commands_never_crash_or_reach_letta(self, target: Rig) -> None:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        before = len(target.letta.sends())
        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=12,
        )
        events = st.fixed_dictionaries(
            {"type": st.sampled_from(["app_mention", "message", "reaction_added"]) | st.text(max_size=12)},
            optional={
                "user": st.text(max_size=12) | st.none(),
                "text": st.text(max_size=80) | json_values,
                "ts": st.text(max_size=20) | st.integers(),
                "channel": st.just("C0UNBOUND") | json_values,
                "subtype": st.sampled_from(["bot_message", "message_changed"]),
                "bot_id": st.text(max_size=8),
            },
        )

        examples = int(os.environ.get("FUZZ_EXAMPLES", "40"))

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize="FUZZ_EXAMPLES" not in os.environ,
            suppress_health_check=list(HealthCheck),
        )
        @given(event=events, command_text=st.text(max_size=60))
        def fuzz(event: dict, command_text: str) -> None:
            envelope = json.loads(event_body({"type": "app_mention"}))
            envelope["event"] = event
            response = target.bridge.post(json.dumps(envelope).encode())
            assert response.status_code < 500, response.text
            from tests.fakes.signing import command_body

            command = command_body(command_text, channel_id="C0UNBOUND")
            response = target.bridge.post(command, content_type="application/x-www-form-urlencoded")
            assert response.status_code < 500, response.text

        fuzz()
        time.sleep(0.5)
        assert len(target.letta.sends()) == before
        assert "Traceback" not in target.bridge.logs()


DEEP = 20000
UNSIGNED_TIMESTAMPS = ["abc", "1e9", "9" * 5000, "1 2", "-1", "1.5", "\u0661\u0662"]
MALFORMED_SIGNED = {
    "event null": (b'{"type":"event_callback","event":null}', "application/json"),
    "event a string": (b'{"type":"event_callback","event":"str"}', "application/json"),
    "event without type": (b'{"event":"str"}', "application/json"),
    "event type a list": (b'{"type":"event_callback","event":{"type":[1]}}', "application/json"),
    "type a number": (b'{"type":5}', "application/json"),
    "deep json": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "application/json"),
    "deep json list": (b'{"a":' + b"[" * DEEP + b"]" * DEEP + b"}", "application/json"),
    "deep form payload": (
        b"payload=" + quote_plus('{"type":"block_actions","a":' + "[" * DEEP + "]" * DEEP + "}").encode(),
        "application/x-www-form-urlencoded",
    ),
    "actions a string": (action_body({"type": "block_actions", "actions": "x"}), "application/x-www-form-urlencoded"),
    "actions [{}]": (action_body({"type": "block_actions", "actions": [{}]}), "application/x-www-form-urlencoded"),
    "actions [1]": (action_body({"type": "block_actions", "actions": [1]}), "application/x-www-form-urlencoded"),
    "payload type missing": (action_body({"actions": []}), "application/x-www-form-urlencoded"),
    "payload user a string": (
        action_body({"type": "block_actions", "user": "U1", "actions": [{"action_id": "x", "block_id": "b"}]}),
        "application/x-www-form-urlencoded",
    ),
    "command without command": (b"text=connect&user_id=U1", "application/x-www-form-urlencoded"),
}


class TestMalformedRequests:
    """Issue 16.5: bad requests get 400 or 401, never a 500 (which Slack retries), and nothing runs."""

    @pytest.mark.parametrize("timestamp", UNSIGNED_TIMESTAMPS, ids=["abc", "1e9", "5000 digits", "inner space", "-1",
                                                                   "1.5", "arabic digits"])
    def test_a_timestamp_that_is_no_number_is_401(self, target: Rig, timestamp: str) -> None:
        before = len(target.letta.sends())
        body = event_body(mention_event("ts", channel=target.channel))
        for signature in ("v0=abc", slack_signature(SIGNING_SECRET, timestamp, body)):
            headers = {"content-type": "application/json", "x-slack-request-timestamp": timestamp.encode(),
                       "x-slack-signature": signature}
            response = httpx.post(f"{target.bridge.url}/slack/events", content=body, headers=headers)
            assert response.status_code == 401, response.text
        time.sleep(0.2)
        assert len(target.letta.sends()) == before

    @pytest.mark.parametrize("case", list(MALFORMED_SIGNED))
    def test_signed_bodies_not_shaped_like_slacks_are_400(self, target: Rig, case: str) -> None:
        before = len(target.letta.sends())
        body, content_type = MALFORMED_SIGNED[case]
        response = target.bridge.post(body, content_type=content_type)
        assert response.status_code == 400, response.text
        assert len(target.letta.sends()) == before
        assert "Traceback" not in target.bridge.logs() and "RecursionError" not in target.bridge.logs()

    def test_fuzzed_shapes_of_events_and_actions_never_500(self, target: Rig) -> None:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        before = len(target.letta.sends())
        scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
        values = st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=8,
        )
        slack_types = st.sampled_from(["event_callback", "url_verification", "app_rate_limited"]) | values
        event = values | st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["app_mention", "message"]) | values,
                "user": values, "text": values, "ts": values, "channel": values, "thread_ts": values,
                "subtype": values, "bot_id": values, "channel_type": values, "files": values,
            },
        )
        envelope = st.fixed_dictionaries(
            {},
            optional={"type": slack_types, "event": event, "team_id": values, "event_id": values,
                      "challenge": values, "authorizations": values, "api_app_id": values},
        )
        action = values | st.fixed_dictionaries(
            {}, optional={"action_id": values, "block_id": values, "type": values, "value": values,
                          "selected_option": values, "selected_options": values},
        )
        payload = st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["block_actions", "view_submission", "shortcut", "message_action"]) | values,
                "actions": values | st.lists(action, max_size=3), "user": values, "team": values,
                "channel": values, "container": values, "response_url": values, "state": values, "view": values,
            },
        )
        fields = st.lists(
            st.tuples(st.sampled_from(["command", "text", "team_id", "channel_id", "user_id", "response_url",
                                       "token", "trigger_id"]) | st.text(max_size=8), st.text(max_size=20)),
            max_size=8,
        )

        @settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                  derandomize="FUZZ_EXAMPLES" not in os.environ, suppress_health_check=list(HealthCheck))
        @given(envelope=envelope, payload=payload, fields=fields)
        def fuzz(envelope: dict, payload: dict, fields: list[tuple[str, str]]) -> None:
            for body, content_type in (
                (json.dumps(envelope).encode(), "application/json"),
                (action_body(payload), "application/x-www-form-urlencoded"),
                (urlencode(fields).encode(), "application/x-www-form-urlencoded"),
            ):
                response = target.bridge.post(body, content_type=content_type)
                assert response.status_code < 500, (body, response.text)

        fuzz()
        time.sleep(0.5)
        assert len(target.letta.sends()) == before
        assert "Traceback" not in target.bridge.logs()


def _tag(text: str) -> str:
    """The question a deep-backlog mention asked ("q17"): the last one in what an agent received."""
    return str(re.findall(r"\bq\d+\b", text)[-1])


@pytest.mark.slow
def test_a_deep_backlog_in_one_channel_runs_every_turn_once_in_order(guarded: Rig) -> None:
    """A burst far faster than the agents answer, into one channel: 90 top-level mentions and 30 more in one
    thread (where threads are conversations, and run at once, the 90 go into three threads: each queues deeply),
    every fifth delivered twice (Slack's retry) and with its message twin, the bridge killed with -9 while the
    backlog drains. Each mention still reaches each agent once, in the order it was sent (per thread where threads
    are conversations), with no agent ever given two sends at once; each thread's replies come in its mentions'
    order; each waiting thread is posted one queue notice at most, whose count was true when it was posted."""
    r = guarded
    by_thread = r.letta.version == "0.16.8" and r.bridge.env.get("LETTA_CONVERSATIONS") == "true"
    for name, agent in r.agents.items():  # distinct texts: a resumed turn recognises its posts by their text
        r.letta.set_reply(agent, lambda text, name=name: f"{name} {_tag(text)}")
    r.letta.set_delay(r.agents["alice"], 1.5)  # the first turn holds the channel while the backlog builds
    first, _ = r.bridge.mention("q0", r.channel)
    r.letta.wait_for(lambda: len(r.letta.inputs) == 1, 10)
    sent: list[tuple[str, str]] = [("q0", first["ts"])]  # (tag, thread) in the order Slack delivered them
    roots: list[str] = []  # where threads run at once: the three threads the 90 go into
    for n in range(1, 121):
        thread = first["ts"] if n > 90 else roots[n % 3] if by_thread and n > 3 else None
        event = mention_event(f"q{n}", channel=r.channel, thread_ts=thread)
        if by_thread and n <= 3:
            roots.append(event["ts"])
        body = event_body(event)
        assert r.bridge.post(body).status_code == 200
        if n % 5 == 0:
            retry = r.bridge.post(body, timestamp=int(time.time()) + 1, **{"X-Slack-Retry-Num": "1"})
            assert retry.status_code == 200
            twin = event_body(dict(event, type="message"))
            assert r.bridge.post(twin).status_code == 200
        sent.append((f"q{n}", event.get("thread_ts") or event["ts"]))
    # Still faster than notices may go out, yet long enough for the notice of the thread that waits longest.
    r.letta.set_delay(r.agents["alice"], 0.05)
    r.letta.wait_for(lambda: len(r.letta.inputs) >= 3 * 40, 60)
    # A notice still due at a kill -9 is never posted after the restart (a known limit, docs/guarantees.md): the
    # kill comes once the thread of 30 waiting mentions has been told, so what is checked is that it was told once.
    r.slack.wait_for(lambda: any(_queued(p) for p in r.slack.posts(r.channel, first["ts"])), 30)
    r.bridge.kill()
    r.bridge.restart()
    r.slack.wait_for(lambda: len([p for p in r.slack.posts(r.channel) if p.args.get("username")]) >= 3 * len(sent), 60)
    time.sleep(0.5)

    assert r.letta.overlaps == []
    for name, agent in r.agents.items():
        ran = [_tag(i.text) for i in sorted(r.letta.inputs, key=lambda i: i.started) if i.agent_id == agent]
        assert sorted(ran) == sorted(t for t, _ in sent), f"{name} ran a turn twice or missed one"
        if by_thread:  # threads at once, each thread in order
            for thread in {t for _, t in sent}:
                assert [x for x in ran if (x, thread) in sent] == [x for x, t in sent if t == thread]
        else:
            assert ran == [t for t, _ in sent], f"{name} ran the channel's turns out of order"
    for thread in {t for _, t in sent}:
        posted = [p.args["text"] for p in r.slack.posts(r.channel, thread) if p.args.get("username")]
        assert posted == [f"{name} {x}" for x, t in sent if t == thread for name in ("alice", "bob", "carol")]
    _queue_notices_were_true(r, sent, by_thread)


def _queued(post: Call) -> bool:
    """Whether the post is a queue notice."""
    return str(post.args["text"]).startswith("Queued")


def _queue_notices_were_true(r: Rig, sent: list[tuple[str, str]], by_thread: bool) -> None:
    """One queue notice at most per thread, one at least in a thread that queued deeply, and each one's count
    true when it was posted: no more than the mentions sent before the thread's newest, no fewer than those of
    them whose turn had not started (the count was taken just before the post)."""
    queued = [p for p in r.slack.posts(r.channel) if _queued(p)]
    threads = [str(p.args["thread_ts"]) for p in queued]
    assert len(threads) == len(set(threads)), f"a thread was posted two queue notices: {sorted(threads)}"
    assert sent[0][1] in threads, "the thread of 30 waiting mentions was never told it is queued"
    alice = sorted((i for i in r.letta.inputs if i.agent_name == "alice"), key=lambda i: i.started)
    for post in queued:
        thread, text = str(post.args["thread_ts"]), str(post.args["text"])
        count = int(re.findall(r"after the (\d+) earlier", text)[0])
        line = [tag for tag, t in sent if t == thread or not by_thread]  # what it waits behind, in order
        mine = [line.index(tag) for tag, t in sent if t == thread]
        begun = len({_tag(i.text) for i in alice if i.started <= post.at and _tag(i.text) in line})
        assert min(mine) - begun <= count <= max(mine), f"{thread}: {text!r} ({begun} of the line begun)"
