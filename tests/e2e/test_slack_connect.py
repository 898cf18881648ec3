"""A Slack Connect channel: a person of another organisation mentions the bot."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_guarantees import rig
from tests.fakes.signing import next_ts
from tests.reference import SLACK


def test_an_external_persons_name_reaches_the_agents_though_users_info_refuses_it(tmp_path: Path) -> None:
    """users.info answers `user_not_found` for a person of another organisation (slack-poker-planner#20, a
    Slack Connect channel's guest): the agents were told the person's user id, `[U0EXTPERS in #... on Slack]`. Slack
    embeds the sender's `user_profile` in such a message (reference/slack/events/app_mention_slack_connect.json,
    and in conversations.replies): the bridge reads it there."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        body = json.loads((SLACK / "events" / "app_mention_slack_connect.json").read_text())
        body.pop("_source")
        event = body["event"]
        ts = next_ts()
        event.update(channel=r.channel, ts=ts, event_ts=ts)
        body["event_id"] = "Ev0CONNECT0E2E"
        r.slack.add_message(r.channel, event["text"], user=event["user"], ts=ts, user_profile=event["user_profile"])
        assert r.bridge.post(json.dumps(body).encode()).status_code == 200
        r.slack.wait_for(lambda: r.replies(ts) == ["alice"], 20)
        [asked] = [i.text for i in r.letta.inputs]
        assert "[pat in " in asked and "U0EXTPERS" not in asked, asked
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()
