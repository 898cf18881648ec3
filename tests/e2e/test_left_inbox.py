"""Events a `serve` run with the events inbox acknowledged and left behind (killed before they became turns) are
made turns by the next start on the same database whatever its mode: Socket Mode, or `serve` with
HTTP_EVENTS_INBOX off, hand them over too, once each (Slack had its 200 and will not send them again). Before, Socket
Mode left them unanswered without a word (found by review revDG), and the inbox off only said they waited."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.harness import APP_TOKEN, BridgeProcess, base_env, inbox_drained, leave_in_inbox, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@pytest.mark.parametrize("mode", ["socket", "serve"])
def test_a_mention_a_serve_run_left_in_the_inbox_is_answered_once_by_the_next_start_in_any_mode(
    tmp_path: Path, mode: str
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        db = tmp_path / "b.db"
        extra = {"SLACK_APP_TOKEN": APP_TOKEN} if mode == "socket" else {"HTTP_EVENTS_INBOX": "false"}
        env = base_env(slack.api_url, letta.base_url, db, **extra)
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0LEFTINB", alice).returncode == 0
        event, _, _ = leave_in_inbox(db, "acknowledged by serve, never a turn", "C0LEFTINB")
        bridge = BridgeProcess(env, mode=mode).start(tmp_path / "bridge.log")
        try:
            slack.wait_for(lambda: len(slack.posts("C0LEFTINB", event["ts"])) == 1, timeout=20)
            inbox_drained(db)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
        assert "events left in the inbox by the last run handed over count=1" in bridge.logs()
        assert len(slack.posts("C0LEFTINB", event["ts"])) == 1
        assert [i.agent_id for i in letta.inputs] == [alice]
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM turns WHERE message_ts=?", (event["ts"],)).fetchone()[0] == 1

        # Started again, nothing is left to hand over: the mention is not answered twice.
        bridge = BridgeProcess(env, mode=mode).start(tmp_path / "bridge2.log")
        try:
            if mode == "socket":
                slack.wait_for(slack.socket_connected, timeout=20)
        finally:
            assert bridge.stop() == 0
        assert "handed over" not in bridge.logs()
        assert len(slack.posts("C0LEFTINB", event["ts"])) == 1
