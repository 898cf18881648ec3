"""A burst into one busy channel, then a restart (a deploy's SIGTERM): the threads whose queue notice was still
due (one new notice a second per channel) are never told they are queued, however long they wait after it. The
next start takes up only the notices already posted (docs/guarantees.md: one notice per waiting thread, across a
restart too)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0DUERS01"


@pytest.mark.timeout(120)
def test_threads_still_owed_a_notice_at_a_restart_are_told_after_it(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", SHUTDOWN_GRACE_SECONDS="0")
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 30.0)  # the first turn holds the channel for the whole test
        slack.add_channel(CHANNEL, "duers")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            mentions = [bridge.mention(f"question {n}", CHANNEL)[0] for n in range(20)]
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)

            def told() -> set[str]:
                return {str(p.args["thread_ts"]) for p in slack.posts(CHANNEL) if p.args["text"].startswith("Queued")}

            slack.wait_for(lambda: len(told()) >= 3, 10)
            assert bridge.stop() == 0  # a deploy: every mention still waits, most of them untold
            before = told()
            bridge.start(tmp_path / "bridge2.log")
            time.sleep(15)  # at one a second, fifteen more threads could have been told
            waiting = {m["ts"] for m in mentions[1:]}
            untold = waiting - told()
            assert len(letta.inputs) <= 2, "the threads still wait"
            after = len(told()) - len(before)
            assert not untold, f"{len(before)} told before the restart, {after} after; untold: {len(untold)}"
        finally:
            bridge.stop()
