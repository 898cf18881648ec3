"""A DM on DEFAULT_TARGET whose first default-target lookup meets a Letta blip (a 503 once): the binding's worker
took its lease believing the threads run in order, while the turn's own lookup (a moment later) and the queue
notice's (cached since) said they were conversations. A second DM thread waited behind the first, told nothing, and
every later thread too, for as long as the DM's turns kept coming."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.test_dm_threads import DM, dm, dora_on_the_default_target


def test_dm_threads_after_a_lookup_blip_are_told_they_wait_then_run_at_once(tmp_path: Path) -> None:
    with dora_on_the_default_target(tmp_path, 5.0, LETTA_CONVERSATIONS="true") as (slack, letta, dora, bridge):
        letta.fail_next("GET", rf"/v1/agents/{dora}/?", 503, times=1)
        dm(slack, bridge, "first question")
        letta.wait_for(lambda: len(letta.inputs) == 1, 15)
        second = dm(slack, bridge, "second question")
        started = time.monotonic()

        def told() -> list[str]:
            texts = [str(p.args.get("text")) for p in slack.posts(DM, second["ts"])]
            return [text for text in texts if "Queued" in text]

        letta.wait_for(lambda: len(letta.inputs) == 2 or bool(told()), 15)
        waited = time.monotonic() - started
        assert waited < 2.5 or told(), f"the second DM thread waited {waited:.1f} s behind the first, told nothing"
        # The worker asks again once the first turn ended: the threads now run at once, a third one beside the second.
        letta.wait_for(lambda: len(letta.inputs) == 2, 15)
        dm(slack, bridge, "third question")
        started = time.monotonic()
        letta.wait_for(lambda: len(letta.inputs) == 3, 15)
        waited = time.monotonic() - started
        assert waited < 2.5, f"the third DM thread waited {waited:.1f} s behind the second"
