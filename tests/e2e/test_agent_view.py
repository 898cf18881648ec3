"""A DM with the bot in Slack's agent view (issue 18): a new thread gets the suggested prompts, its first message
becomes its title, and its turns run against DEFAULT_TARGET, as a session like any other."""

from __future__ import annotations

import copy
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

DM, ASKER = "D0123ABCD", "U0123ABCD"


def test_a_dm_thread_in_the_agent_view_gets_prompts_a_title_and_the_default_target(tmp_path: Path) -> None:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    slack.agent_app = True
    dora = letta.add_agent("dora")
    env = base_env(
        slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora,
        SLACK_SUGGESTED_PROMPTS="What changed today? | Draft a reply to the last incident",
    )  # fmt: skip
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        root = next_ts()
        started = copy.deepcopy(load(SLACK / "events" / "assistant_thread_started.json"))["event"]
        started["assistant_thread"].update(channel_id=DM, thread_ts=root, user_id=ASKER)
        started["event_ts"] = next_ts()
        assert bridge.post(event_body(started)).status_code == 200
        slack.wait_for(lambda: (DM, root) in slack.suggested)
        assert [p["message"] for p in slack.suggested[(DM, root)]] == [
            "What changed today?",
            "Draft a reply to the last incident",
        ]
        ts = next_ts()
        message = {"type": "message", "channel": DM, "user": ASKER, "text": "What changed today?", "ts": ts}
        message.update(thread_ts=root, channel_type="im", event_ts=ts, team=slack.team_id)
        assert bridge.post(event_body(message)).status_code == 200
        slack.wait_for(lambda: any(p.args.get("username") == "dora" for p in slack.posts(DM, root)), timeout=15)
        assert [i.agent_id for i in letta.inputs] == [dora]  # the default target answered
        assert slack.thread_titles[(DM, root)] == "What changed today?"
        slack.wait_for(lambda: slack.session_statuses(DM, root) == ["processing", "active"])
        assert "Traceback" not in bridge.logs(), bridge.logs()
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_a_follow_up_in_an_agent_view_thread_keeps_the_thread_s_title(tmp_path: Path) -> None:
    """Every DM turn titled its thread: a follow-up ("thanks!") renamed the thread in the agent view's history,
    which then listed the conversation by its last words instead of what it is about."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    slack.agent_app = True
    dora = letta.add_agent("dora")
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", DEFAULT_TARGET=dora))
    bridge.start(tmp_path / "bridge.log")
    try:
        root = next_ts()
        for n, text in enumerate(["Rollback plan for the billing service", "thanks!"], start=1):
            ts = next_ts()
            message = {"type": "message", "channel": DM, "user": ASKER, "text": text, "ts": ts}
            message.update(thread_ts=root, channel_type="im", event_ts=ts, team=slack.team_id)
            assert bridge.post(event_body(message)).status_code == 200
            slack.wait_for(lambda n=n: len(slack.session_statuses(DM, root)) == 2 * n, timeout=15)
        assert slack.thread_titles[(DM, root)] == "Rollback plan for the billing service"
        assert len(slack.calls_to("assistant.threads.setTitle")) == 1
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
