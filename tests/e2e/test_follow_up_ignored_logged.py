"""What the bridge ignores it ignores with a stated reason: a plain channel message is logged
`slack event ignored ... reason=not_a_mention`, but a thread reply in a thread the bot never answered (or in a
channel whose follow-ups are off, or disconnected) was dropped without a word in the log."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import open_world
from tests.fakes.signing import event_body, next_ts


def test_a_thread_reply_the_bridge_does_not_take_up_is_logged_with_its_reason(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        root = next_ts()
        plain = {"user": "U0123ABCD", "type": "message", "ts": root, "text": "lunch?", "team": "T0123ABCD",
                 "channel": crew.channel, "event_ts": root, "channel_type": "channel"}
        ts = next_ts()
        reply = {"user": "U0456EFGH", "type": "message", "ts": ts, "text": "sure", "team": "T0123ABCD",
                 "thread_ts": root, "parent_user_id": "U0123ABCD", "channel": crew.channel, "event_ts": ts,
                 "channel_type": "channel"}
        assert world.bridge.post(event_body(plain, event_id="EvPLAIN0001")).status_code == 200
        assert world.bridge.post(event_body(reply, event_id="EvREPLY0001")).status_code == 200
        time.sleep(1.5)
        logs = world.bridge.logs()
        assert "event_id=EvPLAIN0001" in logs  # "slack event ignored type=message ... reason=not_a_mention"
        assert "event_id=EvREPLY0001 reason=not_the_bots_thread" in logs, [ln for ln in logs.splitlines() if "Ev" in ln]
