"""`python -m bridge socket` past its start: Slack dropping or refreshing the connection, a token refused, an event
delivered again."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.e2e.harness import APP_TOKEN, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack


def test_a_dropped_socket_whose_host_is_unreachable_is_retried_in_one_line_each_then_with_a_fresh_url(
    tmp_path: Path,
) -> None:
    """Slack drops the connection and the next URL it hands out cannot be reached (its WebSocket hosts are
    wss-primary and wss-backup): each failed attempt is one log line, not a traceback, and the next attempt asks
    Slack for a fresh URL instead of retrying the dead one forever."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta, socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # a port nobody listens on
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0SOCKET2", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            opened = len(slack.calls_to("apps.connections.open"))
            slack.socket_url = f"ws://127.0.0.1:{dead.getsockname()[1]}/link/?ticket=dead-ticket"
            slack.drop_sockets()
            slack.wait_for(lambda: "socket mode connection failed, trying again" in bridge.logs(), timeout=10)
            slack.socket_url = None  # Slack's next URL names a host that answers
            slack.wait_for(slack.socket_connected, timeout=25)
            assert len(slack.calls_to("apps.connections.open")) >= opened + 2, "a fresh URL was asked for"
            event = mention_event("after the reconnection", channel="C0SOCKET2")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: len(slack.posts("C0SOCKET2", event["ts"])) == 1, timeout=10)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
        logs = bridge.logs()
        assert "Traceback" not in logs, logs
        assert "socket mode connection failed, trying again: connection refused" in logs
        assert "dead-ticket" not in logs, "the connection's one-time ticket is not logged"


def test_an_app_token_refused_on_a_reconnection_stops_the_bridge_in_words_after_its_turns(tmp_path: Path) -> None:
    """The app-level token is revoked (regenerated in the app's settings) while the bridge runs: at its next
    reconnection Slack refuses it. A bridge that can no longer receive anything finishes the turn it has, says
    why in one line and exits 1, instead of staying up, deaf, logging the refusal every few seconds."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.5)
        assert run_cli(env, "channels", "connect", "C0SOCKET3", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            event = mention_event("a slow one", channel="C0SOCKET3")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: "event accepted" in bridge.logs(), timeout=10)
            slack.app_token = "xapp-regenerated"  # the old one is refused from now on
            slack.drop_sockets()
            assert bridge.proc is not None
            code = bridge.proc.wait(20)
        finally:
            bridge.stop()
        assert code == 1, bridge.logs()
        assert len(slack.posts("C0SOCKET3", event["ts"])) == 1, "the turn in flight was finished"
    logs = bridge.logs()
    assert logs.strip().splitlines()[-1].startswith("error: Slack refused SLACK_APP_TOKEN (invalid_auth)"), logs
    assert logs.count("invalid_auth") == 1, logs


def test_an_event_delivered_again_after_slack_refreshes_the_connection_is_one_turn(tmp_path: Path) -> None:
    """Slack asks for a new connection (`disconnect`, refresh_requested) and delivers an event again, in a new
    envelope with retry_attempt set: the agent is asked once, one reply. The envelope sent again is acknowledged;
    the first is acknowledged too unless it was still unread when slack_sdk closed the old connection (it does so
    at once on a refresh, as seen on a loaded machine), which is why Slack sends it again."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0SOCKET4", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            opened = len(slack.calls_to("apps.connections.open"))
            payload = json.loads(event_body(mention_event("only once", channel="C0SOCKET4")))
            told = slack.open_sockets()
            first = slack.send_socket_event(payload)
            slack.send_socket_disconnect("refresh_requested")
            # Sent again once the new connection is open: sent while only the old one was (the client has let it
            # go, the fake has not seen it close yet), the envelope would be lost there, as Slack's would.
            reopened = lambda: len(slack.calls_to("apps.connections.open")) > opened  # noqa: E731
            slack.wait_for(lambda: reopened() and bool(slack.open_sockets() - told))
            again = slack.send_socket_event(payload, retry_attempt=1, retry_reason="timeout")
            acked = lambda: {a.get("envelope_id") for a in slack.socket_acks}  # noqa: E731
            slack.wait_for(lambda: again in acked(), timeout=10)
            slack.wait_for(lambda: len(slack.posts("C0SOCKET4")) == 1, timeout=10)
            time.sleep(0.5)  # a second turn would have asked and posted by now
            assert len(slack.posts("C0SOCKET4")) == 1
            assert len([r for r in letta.sends() if letta.asked(r) == alice]) == 1
            both_read = first in acked()
            assert bridge.stop() == 0
        finally:
            bridge.stop()
        assert bridge.logs().count("event accepted") == 1
        assert ("duplicate event dropped" in bridge.logs()) == both_read


def test_a_refresh_slack_will_not_give_a_url_for_at_once_is_one_line_then_the_next_connection_works(
    tmp_path: Path,
) -> None:
    """Slack asks for a new connection (`disconnect`) and apps.connections.open fails on its side at that moment:
    one plain line, no traceback; Slack closes the old connection, the bridge asks again, and events flow."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0SOCKET5", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            opened = len(slack.calls_to("apps.connections.open"))
            slack.fail_next("apps.connections.open", "internal_error")
            slack.send_socket_disconnect("refresh_requested", close_after=0.5)
            slack.wait_for(lambda: len(slack.calls_to("apps.connections.open")) >= opened + 2, timeout=15)
            slack.wait_for(slack.socket_connected, timeout=10)
            event = mention_event("after the refresh", channel="C0SOCKET5")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: len(slack.posts("C0SOCKET5", event["ts"])) == 1, timeout=10)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
        logs = bridge.logs()
        assert "Traceback" not in logs, logs
        assert logs.count("socket mode connection failed, trying again: Slack answered internal_error") == 1, logs


def test_socket_mode_turned_off_in_the_apps_settings_stops_the_bridge_in_words_after_its_turns(tmp_path: Path) -> None:
    """Someone turns Socket Mode off in the app's settings: Slack says `disconnect` with reason link_disabled.
    slack_sdk would ask for a new connection every few seconds, forever, a bridge up and deaf; it finishes the turn
    it has, says why and what to do in one line, and exits 1."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN)
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.5)
        assert run_cli(env, "channels", "connect", "C0SOCKET6", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            opened = len(slack.calls_to("apps.connections.open"))
            event = mention_event("a slow one", channel="C0SOCKET6")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: "event accepted" in bridge.logs(), timeout=10)
            slack.send_socket_disconnect("link_disabled", close_after=0.2)
            assert bridge.proc is not None
            code = bridge.proc.wait(20)
        finally:
            bridge.stop()
        assert code == 1, bridge.logs()
        assert len(slack.posts("C0SOCKET6", event["ts"])) == 1, "the turn in flight was finished"
        assert len(slack.calls_to("apps.connections.open")) == opened, "no new connection asked for"
    last = bridge.logs().strip().splitlines()[-1]
    assert last.startswith("error: Slack closed the Socket Mode connection (link_disabled)"), last
    assert "Turn it on again" in last


def test_log_level_debug_in_socket_mode_adds_no_library_debug_lines(tmp_path: Path) -> None:
    """docs/operations.md: DEBUG adds the bridge's own debug lines, the libraries' stay at warning. slack_sdk's
    client logs under the bridge's logger name: at DEBUG it wrote every envelope whole (verification token, event
    text, response_url), every ack, and a PONG every 10 s."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN,
                       LOG_LEVEL="DEBUG", LOG_FORMAT="json")
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0SOCKDB1", alice).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            event = mention_event("follow me", channel="C0SOCKDB1")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: len(slack.posts("C0SOCKDB1", event["ts"])) == 1, timeout=10)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
    lines = [json.loads(line) for line in bridge.logs().splitlines() if line.strip().startswith("{")]
    assert any(line["level"] == "debug" and line["logger"].startswith("bridge.") for line in lines)
    client = [line["message"][:200] for line in lines
              if line["logger"] == "bridge.slack.socket_mode.client" and line["level"] == "debug"]
    assert client == [], client
    assert any("has been established" in line["message"] for line in lines), "its info lines stay"
