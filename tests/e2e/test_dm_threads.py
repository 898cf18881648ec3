"""Threads on DEFAULT_TARGET (a DM, or an unbound channel under DEFAULT_TARGET_IN_CHANNELS) where threads are Letta
conversations: each thread is its own conversation, so (docs/guarantees.md "In order, in parallel") different threads
run at the same time, as in a bound channel. They ran one at a time: only a stored binding was asked."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack

DM, ASKER = "D0123ABCD", "U0123ABCD"


def _dm(slack: FakeSlack, text: str) -> dict:
    ts = next_ts()
    return {"type": "message", "channel": DM, "user": ASKER, "text": text, "ts": ts, "channel_type": "im",
            "event_ts": ts, "team": slack.team_id}


def test_two_dm_threads_on_the_default_target_run_at_once_in_their_own_conversations(tmp_path: Path) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    slack.add_dm(DM, ASKER)
    letta.set_delay(dora, 4.0)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora,
                   LETTA_CONVERSATIONS="true")
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        first = _dm(slack, "first question")
        assert bridge.post(event_body(first)).status_code == 200
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        second = _dm(slack, "second question")
        assert bridge.post(event_body(second)).status_code == 200
        # Its own conversation: it need not wait for the first thread's turn (4 s).
        started = time.monotonic()
        letta.wait_for(lambda: len(letta.inputs) == 2, 15)
        waited = time.monotonic() - started
        said = [str(p.args.get("text")) for p in slack.posts(DM, second["ts"])]
        assert not any(s.startswith("Queued") for s in said), said
        assert waited < 2.0, f"the second DM thread waited {waited:.1f} s behind the first"
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_two_threads_of_an_unbound_channel_on_the_default_target_run_at_once(tmp_path: Path) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    letta.set_delay(dora, 4.0)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora,
                   DEFAULT_TARGET_IN_CHANNELS="true", LETTA_CONVERSATIONS="true")
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        slack.add_channel("C0DEFAULT1", "general")
        bridge.mention("first question", "C0DEFAULT1")
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        second, _ = bridge.mention("second question", "C0DEFAULT1")
        started = time.monotonic()
        letta.wait_for(lambda: len(letta.inputs) == 2, 15)
        waited = time.monotonic() - started
        said = [str(p.args.get("text")) for p in slack.posts("C0DEFAULT1", second["ts"])]
        assert not any(s.startswith("Queued") for s in said), said
        assert waited < 2.0, f"the second thread waited {waited:.1f} s behind the first"
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_a_dm_waiting_behind_another_is_not_told_it_waits_in_a_channel(tmp_path: Path) -> None:
    """A DM is no channel (the agents are told "a direct message"); its queue notice said "... in this channel.".
    Without conversations a DM's threads run one at a time, so its second thread waits."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    slack.add_dm(DM, ASKER)
    letta.set_delay(dora, 3.0)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora,
                   LETTA_CONVERSATIONS="false")
    bridge = BridgeProcess(env)
    bridge.start(tmp_path / "bridge.log")
    try:
        first = _dm(slack, "first question")
        assert bridge.post(event_body(first)).status_code == 200
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        second = _dm(slack, "second question")
        assert bridge.post(event_body(second)).status_code == 200
        queued = lambda: [str(p.args["text"]) for p in slack.posts(DM, second["ts"]) if "Queued" in str(p.args["text"])]  # noqa: E731
        slack.wait_for(lambda: bool(queued()), timeout=10)
        assert queued()[0] == "Queued: I'll answer after the 1 earlier message in our conversation.", queued()
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
