"""Threads on DEFAULT_TARGET (a DM, or an unbound channel under DEFAULT_TARGET_IN_CHANNELS) where threads are Letta
conversations: each thread is its own conversation, so (docs/guarantees.md "In order, in parallel") different threads
run at the same time, as in a bound channel. They ran one at a time: only a stored binding was asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack

DM, ASKER = "D0123ABCD", "U0123ABCD"


@contextmanager
def dora_on_the_default_target(
    tmp_path: Path, delay: float, **settings: str
) -> Iterator[tuple[FakeSlack, FakeLetta, str, BridgeProcess]]:
    """A bridge whose DEFAULT_TARGET is dora (answering after `delay` s), with the DM between the bot and ASKER."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    slack.add_dm(DM, ASKER)
    letta.set_delay(dora, delay)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora, **settings)
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        yield slack, letta, dora, bridge
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def dm(slack: FakeSlack, bridge: BridgeProcess, text: str) -> dict[str, Any]:
    """ASKER's DM `text`, delivered (acknowledged 200)."""
    ts = next_ts()
    event = {"type": "message", "channel": DM, "user": ASKER, "text": text, "ts": ts, "channel_type": "im",
             "event_ts": ts, "team": slack.team_id}
    assert bridge.post(event_body(event)).status_code == 200
    return event


def test_two_dm_threads_on_the_default_target_run_at_once_in_their_own_conversations(tmp_path: Path) -> None:
    with dora_on_the_default_target(tmp_path, 4.0, LETTA_CONVERSATIONS="true") as (slack, letta, _, bridge):
        dm(slack, bridge, "first question")
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        second = dm(slack, bridge, "second question")
        # Its own conversation: it need not wait for the first thread's turn (4 s).
        started = time.monotonic()
        letta.wait_for(lambda: len(letta.inputs) == 2, 15)
        waited = time.monotonic() - started
        said = [str(p.args.get("text")) for p in slack.posts(DM, second["ts"])]
        assert not any(s.startswith("Queued") for s in said), said
        assert waited < 2.0, f"the second DM thread waited {waited:.1f} s behind the first"


def test_two_threads_of_an_unbound_channel_on_the_default_target_run_at_once(tmp_path: Path) -> None:
    with dora_on_the_default_target(
        tmp_path, 4.0, DEFAULT_TARGET_IN_CHANNELS="true", LETTA_CONVERSATIONS="true"
    ) as (slack, letta, _, bridge):
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


def test_a_dm_waiting_behind_another_is_not_told_it_waits_in_a_channel(tmp_path: Path) -> None:
    """A DM is no channel (the agents are told "a direct message"); its queue notice said "... in this channel.".
    Without conversations a DM's threads run one at a time, so its second thread waits."""
    with dora_on_the_default_target(tmp_path, 3.0, LETTA_CONVERSATIONS="false") as (slack, letta, _, bridge):
        dm(slack, bridge, "first question")
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        second = dm(slack, bridge, "second question")

        def queued() -> list[str]:
            return [str(p.args["text"]) for p in slack.posts(DM, second["ts"]) if "Queued" in str(p.args["text"])]

        slack.wait_for(lambda: bool(queued()), timeout=10)
        assert queued()[0] == "Queued: I'll answer after the 1 earlier message in our conversation.", queued()
