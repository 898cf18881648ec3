"""A thread's queue notice when its channel's id changes (channel_id_changed) mid-backlog."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.notice_words import WITHDRAWN_NOTICE
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.e2e.test_channel_life import _deleted
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack

OLD, NEW = "G0PRIV001", "C0PRIV001"


def notice_posts(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [str(p.args["text"]) for ch in (OLD, NEW) for p in slack.posts(ch, thread_ts)
            if str(p.args["text"]).startswith("Queued")]


def notice_texts(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [m["text"] for ch in (OLD, NEW) for m in slack.messages(ch, thread_ts)
            if m["text"].startswith(("Queued", "Not answered"))]


def _moved(bridge: BridgeProcess, slack: FakeSlack) -> None:
    """Slack changes the channel's id: its messages are under the new id from then on (so the fake's are too)."""
    holder = slack if hasattr(slack, "_messages") else slack.workspace  # type: ignore[attr-defined]
    holder._messages[NEW] = holder._messages.pop(OLD, [])
    changed = {"type": "channel_id_changed", "old_channel_id": OLD, "new_channel_id": NEW, "event_ts": next_ts()}
    assert bridge.post(event_body(changed)).status_code == 200


def _start(tmp_path: Path, slack: FakeSlack, letta: FakeLetta) -> tuple[BridgeProcess, str]:
    alice = letta.add_agent("alice")
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
    assert run_cli(settings, "channels", "connect", OLD, alice).returncode == 0
    return BridgeProcess(settings).start(tmp_path / "bridge.log"), alice


def test_a_thread_keeps_one_queue_notice_across_a_channel_id_change(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge, alice = _start(tmp_path, slack, letta)
        try:
            letta.set_delay(alice, 12.0)
            bridge.mention("first", OLD)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            second, _ = bridge.mention("second", OLD)  # waits: its thread gets a queue notice
            slack.wait_for(lambda: len(notice_posts(slack, second["ts"])) == 1, 10)
            _moved(bridge, slack)
            time.sleep(6.5)  # a refresh of the notices after the move
            bridge.mention("and another thing", NEW, thread_ts=second["ts"])  # the same thread, still waiting
            time.sleep(3)
            assert len(notice_posts(slack, second["ts"])) == 1, notice_texts(slack, second["ts"])
        finally:
            bridge.stop()


@pytest.mark.parametrize("moved", [False, True], ids=["control", "id-changed"])
def test_a_mention_deleted_after_a_channel_id_change_ends_its_queue_notice(tmp_path: Path, moved: bool) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge, alice = _start(tmp_path, slack, letta)
        try:
            letta.set_delay(alice, 12.0)
            bridge.mention("first", OLD)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            second, _ = bridge.mention("second", OLD)
            slack.wait_for(lambda: len(notice_posts(slack, second["ts"])) == 1, 10)
            if moved:
                _moved(bridge, slack)
            time.sleep(1)
            assert bridge.post(_deleted(second, NEW if moved else OLD)).status_code == 200
            time.sleep(9)  # past NOTICE_SPACING and EDIT_SPACING
            assert "turn withdrawn" in bridge.logs()
            assert [i for i in letta.inputs if "second" in i.text] == []
            assert notice_texts(slack, second["ts"]) == [WITHDRAWN_NOTICE]
        finally:
            bridge.stop()
