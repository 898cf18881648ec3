"""Socket Mode, the bold-name fallback, ordering without overlapping sends, clean stop, and logs without secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import DEFAULT_SCOPES, FakeSlack


def test_socket_mode_acknowledges_the_envelope_and_runs_the_turn(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        del env["SLACK_SIGNING_SECRET"]
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0SOCKET1", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            event = mention_event("over the socket", channel="C0SOCKET1")
            envelope_id = slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: any(a.get("envelope_id") == envelope_id for a in slack.socket_acks), timeout=10)
            slack.wait_for(lambda: len(slack.posts("C0SOCKET1", event["ts"])) == 1, timeout=10)
            [post] = slack.posts("C0SOCKET1", event["ts"])
            assert post.args["username"] == "alice" and post.args["text"] == "alice says hi"
            assert [c.args.get("token") for c in slack.calls_to("apps.connections.open")] or True
            assert slack.calls_to("apps.connections.open")[0].token == APP_TOKEN
            assert bridge.stop() == 0
        finally:
            bridge.stop()


def test_without_custom_usernames_each_reply_leads_with_the_bold_name(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_AGENT_USERNAMES="false")
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        group = letta.add_group([alice, bob])
        assert run_cli(env, "channels", "connect", "C0NAMES01", group).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("names?", "C0NAMES01")
            slack.wait_for(lambda: len(slack.posts("C0NAMES01", event["ts"])) == 2)
            posts = slack.posts("C0NAMES01", event["ts"])
            assert [p.args["text"] for p in posts] == ["*alice*: alice says hi", "*bob*: bob says hi"]
            assert all(p.args.get("username") is None for p in posts)
        finally:
            bridge.stop()


@pytest.mark.parametrize("version", ["0.11.7", "0.16.8"])
def test_turns_run_in_order_per_channel_and_no_agent_ever_has_two_sends(version: str, tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version=version) as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice, bob, carol = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("carol")
        for agent in (alice, bob, carol):
            letta.set_delay(agent, 0.2)
            letta.set_reply(agent, lambda text: re.findall(r"question \d", text)[-1])
        shared_1 = letta.add_group([alice, bob])
        shared_2 = letta.add_group([bob, carol])
        assert run_cli(env, "channels", "connect", "C0ORDER01", shared_1).returncode == 0
        assert run_cli(env, "channels", "connect", "C0ORDER02", shared_2).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            sent: dict[str, list[str]] = {"C0ORDER01": [], "C0ORDER02": []}
            for n in range(3):
                for channel in sent:
                    event, response = bridge.mention(f"question {n}", channel)
                    assert response.status_code == 200
                    sent[channel].append(event["ts"])
            def replies(channel: str) -> list:
                return [p for p in slack.posts(channel) if p.args.get("username")]

            slack.wait_for(lambda: all(len(replies(c)) == 6 for c in sent), 30)
            assert letta.overlaps == []
            for channel, order in sent.items():
                queued = [p.args for p in slack.posts(channel) if p.args["text"].startswith("Queued")]
                # Only waiting mentions get one, in order, one each; a turn that started before its notice was due
                # gets none (notices.py), which a loaded machine brings about for the first of them (seen in CI).
                threads = [q["thread_ts"] for q in queued]
                assert threads == [ts for ts in order[1:] if ts in threads] and threads, threads
                assert all(re.search(r"after the [12] earlier messages? ", q["text"]) for q in queued), queued
                posts = replies(channel)
                assert [p.args["thread_ts"] for p in posts] == [ts for ts in order for _ in range(2)]
                assert [p.args["text"] for p in posts] == [f"question {n}" for n in range(3) for _ in range(2)]
            starts = sorted((i.started, i.agent_name) for i in letta.inputs)
            assert len(starts) == 12
        finally:
            bridge.stop()


def test_sigterm_stops_cleanly_and_logs_never_hold_a_secret(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key="letta-secret-key-42") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_API_KEY="letta-secret-key-42",
                       LOG_LEVEL="DEBUG")
        alice = letta.add_agent("alice")
        letta.fail_next("POST", rf"/v1/agents/{alice}/messages(/stream)?", 500, {"detail": f"echo {BOT_TOKEN}"})
        assert run_cli(env, "channels", "connect", "C0SECRET1", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        event, _ = bridge.mention("first fails", "C0SECRET1")
        slack.wait_for(lambda: len(slack.posts("C0SECRET1", event["ts"])) == 1)
        event, _ = bridge.mention("second works", "C0SECRET1")
        slack.wait_for(lambda: len(slack.posts("C0SECRET1", event["ts"])) == 1)
        assert bridge.stop() == 0
        sends = [r for r in letta.sends() if letta.asked(r) == alice]
        assert len(sends) == 2 and all(r.headers["authorization"] == "Bearer letta-secret-key-42" for r in sends)
        logs = bridge.logs()
        assert "agent failed" in logs and f"target={alice}" in logs and "request_id=" in logs
        assert "replies=0 failures=1" in logs and "replies=1 failures=0" in logs
        assert "turn ended" in logs and "bridge stopped" in logs
        for secret in (BOT_TOKEN, SIGNING_SECRET, "letta-secret-key-42"):
            assert secret not in logs
        for post in slack.posts("C0SECRET1"):
            assert BOT_TOKEN not in post.args["text"]


def test_without_chat_write_customize_names_lead_the_text_from_the_first_reply(tmp_path: Path) -> None:
    """Slack ignores `username` without chat:write.customize: the scopes auth.test reports decide, before the first
    post, that the agent's name leads the text (else the first replies carried no name at all)."""
    scopes = ",".join(s for s in DEFAULT_SCOPES.split(",") if s != "chat:write.customize")
    with FakeSlack(scopes=scopes) as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        assert run_cli(env, "channels", "connect", "C0NOSCOPE", alice, bob).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("names?", "C0NOSCOPE")
            slack.wait_for(lambda: len(slack.posts("C0NOSCOPE", event["ts"])) == 2)
            posts = [p.args for p in slack.posts("C0NOSCOPE", event["ts"])]
            assert [p["text"] for p in posts] == ["*alice*: alice says hi", "*bob*: bob says hi"]
            assert not any(p.get("username") for p in posts)
            assert bridge.logs().count("lacks chat:write.customize") == 1
        finally:
            bridge.stop()


def test_agent_looks_from_config_and_the_missing_scope_fallback(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        looks = '{"alice": {"display_name": "Alice (research)", "icon_emoji": ":owl:"}}'
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_AGENTS=looks)
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        assert run_cli(env, "channels", "connect", "C0LOOKS01", alice, bob).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("looks?", "C0LOOKS01")
            slack.wait_for(lambda: len(slack.posts("C0LOOKS01", event["ts"])) == 2)
            first, second = (p.args for p in slack.posts("C0LOOKS01", event["ts"]))
            assert (first["username"], first["icon_emoji"]) == ("Alice (research)", ":owl:")
            assert second["username"] == "bob" and "icon_emoji" not in second
            slack.fail_next("chat.postMessage", error="missing_scope", times=1)
            event, _ = bridge.mention("again", "C0LOOKS01")
            slack.wait_for(lambda: len(slack.posts("C0LOOKS01", event["ts"])) == 2)
            texts = [p.args["text"] for p in slack.posts("C0LOOKS01", event["ts"])]
            assert texts == ["*Alice (research)*: alice says hi", "*bob*: bob says hi"]
            assert bridge.logs().count("refused custom usernames") == 1
        finally:
            bridge.stop()
