"""A full disk under the SQLite database while a turn runs (logs or backups filled it): the turn's run crashed,
was made again twice, and was then left for the next start, shown 👀 and its first reply for good while later
mentions were answered ahead of it; /readyz said ready all along. The store's ping now commits a write, so the
runs made again wait for room, and /readyz says 503 meanwhile (found by a review helper)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.unit.test_store_ping import fill, small_disk

CHANNEL = "C0DISKFUL1"


def _names(slack: FakeSlack, ts: str) -> list[str]:
    return [p.args["username"] for p in slack.posts(CHANNEL, ts) if p.args.get("username")]


@pytest.mark.slow  # a tmpfs filled and emptied around a bridge, about 30 s: .ci/run's slow stage, as root
def test_a_turn_caught_by_a_full_disk_finishes_once_there_is_room_before_later_mentions(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk, FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        slack.add_channel(CHANNEL, "disk")
        env = base_env(slack.api_url, letta.base_url, disk / "bridge.db")
        assert run_cli(env, "channels", "connect", CHANNEL, letta.add_group([alice, bob])).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(bob, 3)
            first, _ = bridge.mention("first", CHANNEL)
            slack.wait_for(lambda: _names(slack, first["ts"]) == ["alice"], 15)
            filler = fill(disk)
            time.sleep(9)  # past the runs made again 1 s and 5 s after a crash
            ready = httpx.get(f"{bridge.url}/readyz", timeout=10)
            filler.unlink()
            slack.wait_for(lambda: _names(slack, first["ts"]) == ["alice", "bob"], 30)
            second, _ = bridge.mention("second", CHANNEL)
            slack.wait_for(lambda: _names(slack, second["ts"]) == ["alice", "bob"], 20)
            assert ready.status_code == 503, ready.text
            assert "turn left for the next start" not in bridge.logs()
        finally:
            bridge.stop()
