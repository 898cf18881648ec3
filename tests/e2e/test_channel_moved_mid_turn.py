"""A private channel shared through Slack Connect (channel_id_changed) while one turn runs and another waits:
the channel's turns still run one at a time and in order (docs/guarantees.md), and the waiting turn's agents see
what the group said in the running one (docs/patterns.md: each agent gets the replies since it last spoke)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack


@pytest.mark.parametrize("moved", [False, True], ids=["control", "id-changed"])
def test_a_turn_waiting_when_the_channel_id_changes_runs_after_the_running_one(tmp_path: Path, moved: bool) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start(), letta.start()
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
    assert run_cli(settings, "channels", "connect", "G0PRIV001", letta.add_group([alice, bob])).returncode == 0
    bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
    try:
        letta.set_delay(alice, 3.0)
        bridge.mention("first", "G0PRIV001")
        bridge.mention("second", "G0PRIV001")  # waits behind "first"
        letta.wait_for(lambda: any("first" in i.text for i in letta.inputs), 10)
        changed = {"type": "channel_id_changed", "old_channel_id": "G0PRIV001", "new_channel_id": "C0PRIV001",
                   "event_ts": next_ts()}
        if moved:
            assert bridge.post(event_body(changed)).status_code == 200
        letta.wait_for(lambda: sum(1 for i in letta.inputs if "second" in i.text) == 2, 30)
        letta.wait_for(lambda: all(i.finished is not None for i in letta.inputs), 30)
        first = [i for i in letta.inputs if i.text.endswith("first")]
        second = [i for i in letta.inputs if i.text.endswith("second")]
        alice_second = next(i for i in second if i.agent_id == alice)
        assert '"agent": "bob"' in alice_second.text, f"alice never saw bob's reply to 'first': {alice_second.text!r}"
        first_done = max(i.finished or 0.0 for i in first)
        assert min(i.started for i in second) >= first_done, (
            "the waiting turn was sent to the agents while the channel's running turn was still asking them:\n"
            + "\n".join(f"{i.agent_name}: {i.text!r}" for i in letta.inputs)
        )
    finally:
        bridge.stop(), letta.stop(), slack.stop()


@pytest.mark.parametrize("moved", [False, True], ids=["control", "id-changed"])
def test_a_turn_waiting_for_a_slot_when_its_channel_id_changes_is_still_answered(tmp_path: Path, moved: bool) -> None:
    """revCK: taken by its worker but waiting for a turn slot (MAX_CONCURRENT_TURNS=1, held by another channel) as
    the id changed: the old id's worker ran it once the slot freed, found no binding under the old id and told the
    thread "not connected"; its agent was never asked."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start(), letta.start()
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", MAX_CONCURRENT_TURNS="1")
    assert run_cli(settings, "channels", "connect", "C0BUSY0001", alice).returncode == 0
    assert run_cli(settings, "channels", "connect", "G0PRIV001", bob).returncode == 0
    bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
    try:
        letta.set_delay(alice, 3.0)
        bridge.mention("busy", "C0BUSY0001")  # holds the only slot for 3 s
        letta.wait_for(lambda: any("busy" in i.text for i in letta.inputs), 10)
        first, _ = bridge.mention("first", "G0PRIV001")  # taken by its worker, waits for the slot
        time.sleep(0.5)
        changed = {"type": "channel_id_changed", "old_channel_id": "G0PRIV001", "new_channel_id": "C0PRIV001",
                   "event_ts": next_ts()}
        if moved:
            assert bridge.post(event_body(changed)).status_code == 200
        channel = "C0PRIV001" if moved else "G0PRIV001"
        slack.wait_for(lambda: len(slack.posts(channel, first["ts"])) == 1, 20)
        time.sleep(1)
        said = [str(c.args.get("text")) for c in slack.calls_to("chat.postMessage")]
        assert [i.agent_id for i in letta.inputs if i.text.endswith("first")] == [bob], said
        assert [p.args.get("username") for p in slack.posts(channel, first["ts"])] == ["bob"], said
        assert not any("not connected" in text for text in said), said
    finally:
        bridge.stop(), letta.stop(), slack.stop()
