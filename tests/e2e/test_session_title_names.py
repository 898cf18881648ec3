"""A DM thread's title and its session's title were its first line with Slack's markup as written: "Ask
<@U0456EFGH> about <https://example.com/rb|the runbook>" (revT). People, channels and links read as words."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack

DM, ASKER = "D0123ABCD", "U0123ABCD"


def test_a_dm_threads_title_shows_names_not_markup(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.agent_app = True
        slack.add_user(ASKER, "maria", display_name="maria")
        slack.add_user("U0456EFGH", "bob", display_name="bob")
        dora = letta.add_agent("dora")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            root, ts = next_ts(), next_ts()
            text = "Ask <@U0456EFGH> about <https://example.com/rb|the runbook>"
            message = {"type": "message", "channel": DM, "user": ASKER, "text": text, "ts": ts, "thread_ts": root,
                       "channel_type": "im", "event_ts": ts, "team": slack.team_id}
            assert bridge.post(event_body(message)).status_code == 200
            slack.wait_for(lambda: slack.session_statuses(DM, root)[-1:] == ["active"], timeout=15)
            assert slack.thread_titles[(DM, root)] == "Ask @bob about the runbook"
            assert slack.sessions[(DM, root)]["title"] == "Ask @bob about the runbook"
        finally:
            bridge.stop()
