"""A burst into one busy channel, then a restart (a deploy's SIGTERM): the threads whose queue notice was still
due (one new notice a second per channel) were never told they are queued, however long they waited after it: the
next start took up only the notices already posted (docs/guarantees.md: one notice per waiting thread, across a
restart too)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.held_channel import held_channel


@pytest.mark.timeout(120)
def test_threads_still_owed_a_notice_at_a_restart_are_told_after_it(tmp_path: Path) -> None:
    # the first turn holds the channel for the whole test
    with held_channel(tmp_path, "C0DUERS01", 30.0, SHUTDOWN_GRACE_SECONDS="0") as held:
        bridge, letta = held.bridge, held.letta
        mentions = held.burst(20)
        held.slack.wait_for(lambda: len(held.told()) >= 3, 10)
        assert bridge.stop() == 0  # a deploy: every mention still waits, most of them untold
        before = held.told()
        bridge.start(tmp_path / "bridge2.log")
        time.sleep(15)  # at one a second, fifteen more threads could have been told
        untold = {m["ts"] for m in mentions[1:]} - held.told()
        assert len(letta.inputs) <= 2, "the threads still wait"
        after = len(held.told()) - len(before)
        assert not untold, f"{len(before)} told before the restart, {after} after; untold: {len(untold)}"
