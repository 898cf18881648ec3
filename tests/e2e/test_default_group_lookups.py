"""revCY: a DEFAULT_TARGET group's binding is made anew for each turn (configure.default_binding: bound_at is now),
so since f2e91e6 every turn finds the group's cached record read 'before the binding was saved' and looks the group
up on Letta again: the five-minute cache (docs/patterns.md, ARCHITECTURE.md) never serves a default group."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_a_default_target_group_is_not_looked_up_on_every_turn(tmp_path: Path) -> None:
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    letta = FakeLetta(version="0.16.8")
    letta.start()
    ids = [letta.add_agent(n) for n in ("alice", "bob")]
    group = letta.add_group(ids)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=group,
                   DEFAULT_TARGET_IN_CHANNELS="true", LETTA_RUNNER="bridge")
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        slack.add_channel("C0DEFAULT1", "general")
        for n in range(4):
            event, _ = bridge.mention(f"turn {n}", "C0DEFAULT1")
            slack.wait_for(lambda: len([p for p in slack.posts("C0DEFAULT1", event["ts"])
                                        if p.args.get("username")]) >= 2, 20)
            time.sleep(0.5)
        lookups = [r for r in letta.requests if r.method == "GET" and r.path.rstrip("/") == f"/v1/groups/{group}"]
        assert len(lookups) <= 2, [r.path for r in lookups]
    finally:
        bridge.stop(), letta.stop(), slack.stop()
