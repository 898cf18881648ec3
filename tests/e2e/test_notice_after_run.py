"""A queued mention whose turn came, ran, and was then stopped: its queue notice was edited to "Not answered:
stopped before its turn came" although Letta had been asked and "Stopped by …" was said below it (revU). A notice
says a mention will not be answered only for one that never ran."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0REVU001"


@pytest.mark.timeout(90)
def test_a_turn_stopped_while_running_is_not_said_stopped_before_its_turn(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 2.0)
        slack.add_channel(CHANNEL, "revu")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            bridge.mention("first, holds the channel 2 s", CHANNEL)
            waiting, _ = bridge.mention("second, waits", CHANNEL)
            root = waiting["ts"]
            slack.wait_for(lambda: any(p.args["text"].startswith("Queued") for p in slack.posts(CHANNEL, root)), 10)
            letta.wait_for(lambda: len(letta.inputs) == 2, 10)  # the waiting mention's turn came
            assert bridge.mention("stop", CHANNEL, thread_ts=root)[1].status_code == 200
            time.sleep(8)  # the notice is looked at again 5 s (NOTICE_SPACING) after it was posted
            notices = ("Queued", "Not answered")
            said = [m["text"] for m in slack.messages(CHANNEL, root) if m["text"].startswith(notices)]
            assert said and not said[0].startswith("Not answered"), said
        finally:
            bridge.stop()
