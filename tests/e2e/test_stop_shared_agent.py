"""A Stop in one channel while its turn waits for an agent another channel's turn is asking: the stop cancels the
stopped turn's own sends only. Letta's agent cancel route cancels every active run of the agent, so cancelling it
while another turn holds the agent's send lock takes that turn's answer away (its stream ends `cancelled`)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def _username_posts(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [p.args["username"] for p in slack.posts(channel, ts) if p.args.get("username")]


def test_a_stop_while_waiting_for_a_shared_agent_leaves_the_other_channels_answer(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        for channel in ("C0SHARE01", "C0SHARE02"):
            assert run_cli(env, "channels", "connect", channel, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(alice, 3.0)
            first, _ = bridge.mention("first", "C0SHARE01")
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            second, _ = bridge.mention("second", "C0SHARE02")
            time.sleep(0.5)  # the second turn waits for alice's send lock
            bridge.mention("stop", "C0SHARE02", thread_ts=second["ts"])
            slack.wait_for(lambda: "turn stopped" in bridge.logs(), 10)
            slack.wait_for(lambda: "turn ended turn_id=1" in bridge.logs(), 15)
            assert letta.cancels == [] or all(not runs for _, _, runs in letta.cancels), (
                f"the stop in C0SHARE02 cancelled a run of C0SHARE01's turn: {letta.cancels}"
            )
            assert _username_posts(slack, "C0SHARE01", first["ts"]) == ["alice"], "C0SHARE01 lost alice's answer"
            assert len(letta.inputs) == 1, "the stopped turn still asked alice"
        finally:
            bridge.stop()
