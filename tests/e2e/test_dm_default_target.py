"""Direct messages on DEFAULT_TARGET: what the person is told when its agent is gone, how the agents are told where
they are asked, and DMs withdrawn or edited while they wait."""

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
    message = {"type": "message", "channel": DM, "user": ASKER, "text": text, "ts": ts}
    message.update(channel_type="im", event_ts=ts, team=slack.team_id)
    return message


def _deleted(ts: str) -> dict:
    return {"type": "message", "subtype": "message_deleted", "channel": DM, "channel_type": "im",
            "deleted_ts": ts, "hidden": True, "ts": next_ts(), "event_ts": next_ts()}


def _edited(ts: str, text: str) -> dict:
    now = next_ts()
    return {"type": "message", "subtype": "message_changed", "channel": DM, "channel_type": "im", "hidden": True,
            "ts": now, "event_ts": now,
            "message": {"type": "message", "user": ASKER, "text": text, "ts": ts, "edited": {"user": ASKER, "ts": now}},
            "previous_message": {"type": "message", "user": ASKER, "text": "old", "ts": ts}}


def test_a_dm_after_the_default_target_s_agent_was_deleted_is_told_so_not_to_connect_the_dm(tmp_path: Path) -> None:
    """A DM has no binding of its own: it runs on the operator's DEFAULT_TARGET. Telling the person to "connect this
    channel" sent them to /letta connect in a DM, not to the setting that names an agent Letta no longer has."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora))
    bridge.start(tmp_path / "bridge.log")
    try:
        first = _dm(slack, "hello")
        assert bridge.post(event_body(first)).status_code == 200
        slack.wait_for(lambda: any(p.args.get("username") == "dora" for p in slack.posts(DM, first["ts"])), timeout=15)
        letta.remove_agent(dora)  # deleted on Letta since; the bridge's last lookup of it is still fresh
        second = _dm(slack, "still there?")
        assert bridge.post(event_body(second)).status_code == 200
        told = lambda: any("does not know" in str(p.args.get("text")) for p in slack.posts(DM, second["ts"]))  # noqa: E731
        slack.wait_for(told, timeout=15)
        time.sleep(1)  # anything the turn says after it
        said = " ".join(str(p.args.get("text")) for p in slack.posts(DM, second["ts"]))
        assert "connect this channel" not in said and "connect`" not in said, said
        assert "Letta does not know dora" in said and "an operator of the bridge needs to change DEFAULT_TARGET" in said
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_dms_withdrawn_or_edited_while_one_runs_are_answered_as_they_stand(tmp_path: Path) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    letta.set_delay(dora, 3.0)
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora)
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        first, second, third = _dm(slack, "one"), _dm(slack, "two"), _dm(slack, "three")
        for m in (first, second, third):
            assert bridge.post(event_body(m)).status_code == 200
        time.sleep(0.5)
        assert bridge.post(event_body(_deleted(second["ts"]))).status_code == 200
        assert bridge.post(event_body(_edited(third["ts"], "three, edited"))).status_code == 200
        slack.wait_for(lambda: any(p.args.get("username") == "dora" for p in slack.posts(DM, third["ts"])), timeout=30)
        time.sleep(1)
        asked = [i.text for i in letta.inputs]
        assert len(asked) == 2, asked
        assert not any("two" in a for a in asked) and any("three, edited" in a for a in asked), asked
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_the_agents_are_not_told_a_dm_is_a_channel_named_by_its_id(tmp_path: Path) -> None:
    """conversations.info has no `name` for a DM (reference/slack/web-api/conversations.info.json: "DMs: is_im=true,
    no name"): the context prefix said `[alice in #D0123ABCD on Slack]`, a channel that does not exist."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    dora = letta.add_agent("dora")
    slack.add_dm(DM, ASKER)
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora))
    bridge.start(tmp_path / "bridge.log")
    try:
        first = _dm(slack, "hello")
        assert bridge.post(event_body(first)).status_code == 200
        slack.wait_for(lambda: any(p.args.get("username") == "dora" for p in slack.posts(DM, first["ts"])), timeout=15)
        [said] = [i.text for i in letta.inputs]
        assert said.endswith("in a direct message on Slack] hello"), said
        assert f"#{DM}" not in said, said
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
