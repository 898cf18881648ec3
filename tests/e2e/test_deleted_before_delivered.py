"""A mention whose deletion reaches the bridge before the mention itself (its first delivery failed, the person
saw no reaction and deleted it, then Slack's retry came) was answered all the same (revP)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event, next_ts
from tests.fakes.slack import FakeSlack

CHANNEL = "C0DELETE1"


def test_a_mention_deleted_before_its_retry_arrives_is_not_answered(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "delete")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            mention = mention_event("never mind this", channel=CHANNEL)
            deletion = {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": CHANNEL,
                        "ts": next_ts(), "event_ts": next_ts(), "deleted_ts": mention["ts"],
                        "previous_message": {"type": "message", "user": mention["user"], "text": mention["text"],
                                             "ts": mention["ts"]}}
            assert bridge.post(event_body(deletion)).status_code == 200
            # Slack's retry of the mention (its first delivery failed while the bridge restarted).
            assert bridge.post(event_body(mention), **{"X-Slack-Retry-Num": "1"}).status_code == 200
            later, _ = bridge.mention("and this one?", CHANNEL)  # answered: the bridge was taking mentions
            slack.wait_for(lambda: bool(slack.posts(CHANNEL, later["ts"])), 15)
            assert ["and this one?" in i.text for i in letta.inputs] == [True], "the deleted message was answered"
        finally:
            bridge.stop()
