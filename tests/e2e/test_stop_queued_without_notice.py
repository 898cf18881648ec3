"""A deep backlog in one channel: most waiting threads have no queue notice yet (one new notice a second per
channel). "stop" said in such a thread stops its waiting mention, and then nothing at all said so: no notice in
the thread, no answer to the person. A running turn's stop is said in its thread ("Stopped by …"), a queued one
with a notice has its notice edited (README: a queued turn's notice says it will not be answered); one without a
notice must be told too (docs/guarantees.md: "Never silent")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.held_channel import held_channel


@pytest.mark.timeout(90)
def test_stopping_a_queued_mention_that_had_no_notice_yet_is_said_somewhere(tmp_path: Path) -> None:
    with held_channel(tmp_path, "C0STOPQ01", 20.0) as held:  # the first turn holds the channel
        slack, bridge = held.slack, held.bridge
        last = held.burst(12)[-1]["ts"]  # eleventh in line: its notice is due some ten seconds from now
        assert bridge.mention("stop", held.channel, thread_ts=last)[1].status_code == 200
        time.sleep(12)  # every notice the backlog is due has gone out
        assert "stop channel=" in bridge.logs() and "turns=1" in bridge.logs(), "the queued mention was stopped"
        in_thread = [m["text"] for m in slack.messages(held.channel, last)]
        ephemerals = slack.calls_to("chat.postEphemeral")
        told = [c.args.get("text", "") for c in ephemerals if c.args.get("thread_ts") == last]
        assert in_thread or told, "the stop of a queued mention without a notice was said nowhere"
