"""A DM on DEFAULT_TARGET whose first default-target lookup meets a Letta blip (a 503 once): the binding's worker
took its lease believing the threads run in order, while the turn's own lookup (a moment later) and the queue
notice's (cached since) said they were conversations. A second DM thread waited behind the first, told nothing, and
every later thread too, for as long as the DM's turns kept coming."""

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


def test_dm_threads_after_a_lookup_blip_are_told_they_wait_then_run_at_once(tmp_path: Path) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    slack.add_dm(DM, ASKER)
    letta.set_delay(dora, 5.0)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora,
                   LETTA_CONVERSATIONS="true")
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        letta.fail_next("GET", rf"/v1/agents/{dora}/?", 503, times=1)
        first = _dm(slack, "first question")
        assert bridge.post(event_body(first)).status_code == 200
        letta.wait_for(lambda: len(letta.inputs) == 1, 15)
        second = _dm(slack, "second question")
        assert bridge.post(event_body(second)).status_code == 200
        started = time.monotonic()

        def told() -> list[str]:
            texts = [str(p.args.get("text")) for p in slack.posts(DM, second["ts"])]
            return [text for text in texts if "Queued" in text]

        letta.wait_for(lambda: len(letta.inputs) == 2 or bool(told()), 15)
        waited = time.monotonic() - started
        assert waited < 2.5 or told(), f"the second DM thread waited {waited:.1f} s behind the first, told nothing"
        # The worker asks again once the first turn ended: the threads now run at once, a third one beside the second.
        letta.wait_for(lambda: len(letta.inputs) == 2, 15)
        third = _dm(slack, "third question")
        assert bridge.post(event_body(third)).status_code == 200
        started = time.monotonic()
        letta.wait_for(lambda: len(letta.inputs) == 3, 15)
        waited = time.monotonic() - started
        assert waited < 2.5, f"the third DM thread waited {waited:.1f} s behind the second"
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
