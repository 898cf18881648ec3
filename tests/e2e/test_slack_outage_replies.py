"""Slack's Web API answering 503 to every post for longer than the poster's own tries (about two minutes, an
incident on status.slack.com): the agents' replies are posted once Slack is back, each once, and the mention ends
with ✅. Before, the turn ended failed with ⚠️ and the reply stayed only in the database's outbox. Taken over from
review revFG (test_rev_fg_slack_outage.py); it takes some 3 minutes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.test_slack_trouble import CH, rig

pytestmark = pytest.mark.slow  # minutes of Slack outage: .ci/run's slow stage


@pytest.mark.timeout(330)
def test_replies_held_up_by_a_slack_outage_longer_than_the_posts_tries_are_posted_once_slack_is_back(
    tmp_path: Path,
) -> None:
    """Ten 503s on chat.postMessage outlast the poster's OUTCOME_WAITS: the turn waits until auth.test answers,
    then runs again, resumed; alice is asked once and her reply is posted once, after reading the thread."""
    body = {"ok": False, "error": "service_unavailable"}
    with rig(tmp_path, ("alice",)) as (slack, letta, bridge, _):
        slack.fail_next("chat.postMessage", status=503, body=body, times=10)
        event, _ = bridge.mention("hello during an incident", CH)
        slack.remember_event(event)
        ts = event["ts"]
        # Once the mention is in (Bolt's authorize asks auth.test too), Slack is down for the turn's looks as well.
        slack.wait_for(lambda: "slack post outcome unknown" in bridge.logs(), 30)
        slack.fail_next("auth.test", status=503, body=body, times=3)
        slack.wait_for(lambda: bool({"white_check_mark", "warning"} & slack.reactions(CH, ts)), 300)
        time.sleep(2)
        texts = [slack.shown(CH, m["ts"]) for m in slack.messages(CH, ts) if m["ts"] != ts]
        reactions = slack.reactions(CH, ts)
        assert texts == ["alice says hi"], (texts, reactions, bridge.logs()[-3000:])
        assert "white_check_mark" in reactions and "warning" not in reactions, reactions
        assert len(letta.inputs) == 1, letta.inputs
        logs = bridge.logs()
        assert logs.count("Slack does not answer, waiting") == 1, logs[-3000:]
        assert logs.count("Slack answers again") == 1, logs[-3000:]
        assert "left for the next start" not in logs and "turn cannot post" not in logs, logs[-3000:]
