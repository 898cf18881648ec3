"""Slack's agent sessions and Stop (issue 18): a session through a turn, Stop that really stops the Letta run,
the fallbacks where sessions are refused, and who may stop."""

from __future__ import annotations

import copy
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import new_channel
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, event_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

ASKER, STRANGER, ADMIN = "U0123ABCD", "U0STRANGE", "U0ADMIN01"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Rig:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    env: dict[str, str]
    db: Path
    channel: str
    agents: dict[str, str]

    def mention(self, text: str, user: str = ASKER) -> dict[str, Any]:
        event, response = self.bridge.mention(text, self.channel, user=user)
        assert response.status_code == 200
        return event

    def session_stopped(self, thread_ts: str, user: str) -> None:
        event = copy.deepcopy(load(SLACK / "events" / "agent_session_stopped.json"))["event"]
        event.update(channel=self.channel, thread_ts=thread_ts, user=user, event_ts=next_ts())
        assert self.bridge.post(event_body(event)).status_code == 200

    def press_stop(self, user: str) -> str:
        """The fallback Stop button, pressed; returns the response_url its answer goes to."""
        shown = [e for e in self.slack.ephemerals if e.get("blocks")]
        assert shown, "no Stop button was offered"
        button = shown[-1]["blocks"][1]["elements"][0]
        payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_static_select.json"))
        url = self.slack.response_url()
        payload.update(response_url=url, actions=[{**button, "block_id": "letta_stop", "action_ts": next_ts()}])
        payload["user"].update(id=user)
        payload["channel"]["id"] = payload["container"]["channel_id"] = self.channel
        assert self.bridge.post(action_body(payload), content_type=FORM).status_code == 200
        return url

    def status(self, ts: str) -> str:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT status FROM turns WHERE message_ts=?", (ts,)).fetchone()
        return str(row[0]) if row else ""

    def asked(self, name: str) -> int:
        return len([i for i in self.letta.inputs if i.agent_id == self.agents[name]])

    def agent_posts(self, thread_ts: str) -> list[Any]:
        return [p for p in self.slack.posts(self.channel, thread_ts) if p.args.get("username")]


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    agent_app, settings = getattr(request, "param", (True, {}))
    slack = FakeSlack()
    slack.start()
    slack.agent_app = agent_app
    slack.add_user(ASKER, "maria", display_name="maria")
    slack.add_user(STRANGER, "sam", display_name="sam")
    slack.add_user(ADMIN, "ada", display_name="ada", is_admin=True)
    letta = FakeLetta(version="0.16.8")
    letta.start()
    agents = {name: letta.add_agent(name) for name in ("alice", "bob", "carol")}
    group = letta.add_group(list(agents.values()), description="crew")
    channel = new_channel()
    slack.add_channel(channel, "crew")
    db = tmp_path / "bridge.db"
    env = base_env(slack.api_url, letta.base_url, db, **settings)
    assert run_cli(env, "channels", "connect", channel, group).returncode == 0
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        yield Rig(slack, letta, bridge, env, db, channel, agents)
        assert "Traceback" not in bridge.logs(), bridge.logs()
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def wait_status(rig: Rig, ts: str, *wanted: str, timeout: float = 10.0) -> None:
    rig.slack.wait_for(lambda: rig.status(ts) in wanted, timeout)


def test_a_session_shows_the_whole_turn(rig: Rig) -> None:
    root = rig.mention("what is the rollback plan? " + "x" * 300)
    wait_status(rig, root["ts"], "done")
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["active"])
    assert rig.slack.session_statuses(rig.channel, root["ts"]) == ["processing", "active"]
    session = rig.slack.sessions[(rig.channel, root["ts"])]
    assert session["title"].startswith("what is the rollback plan? xx") and len(session["title"]) == 200
    assert session["username"] == "alice" and session["initiator"] == ASKER
    assert len(rig.agent_posts(root["ts"])) == 3
    # The session replaces the fallbacks: no reactions, no status line, no Stop button of the bridge's own.
    assert rig.slack.reactions(rig.channel, root["ts"]) == set()
    assert rig.slack.calls_to("assistant.threads.setStatus") == []
    assert rig.slack.ephemerals == []


def test_a_turns_last_status_is_set_though_slack_fails_it_for_a_while(rig: Rig) -> None:
    """A 5xx on the turn's last setStatus left the session `processing` for good (the fallback ✅ went up beside
    it); it is asked again, a second more apart each time."""
    rig.letta.set_delay(rig.agents["alice"], 1.0)
    root = rig.mention("steady?")
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"]) == ["processing"])
    rig.slack.fail_next("agents.sessions.setStatus", error="internal_error", status=500, times=2)
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["active"], timeout=15)
    assert rig.slack.reactions(rig.channel, root["ts"]) == set()
    assert len(rig.agent_posts(root["ts"])) == 3


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_stop_during_the_first_of_three_agents_stops_the_turn_in_letta(rig: Rig) -> None:
    rig.letta.set_delay(rig.agents["alice"], 3.0)
    root = rig.mention("a long question")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    started = time.monotonic()
    rig.session_stopped(root["ts"], ASKER)
    wait_status(rig, root["ts"], "stopped")
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["active"])
    assert time.monotonic() - started < 2.5, "the stop waited for the model call"
    # The Letta run was cancelled on the agent route, while it ran (200, as captured).
    rig.letta.wait_for(lambda: bool(rig.letta.cancels))
    kind, ident, runs = rig.letta.cancels[0]
    assert (kind, ident) == ("agents", rig.agents["alice"]) and runs and runs[0].startswith("run-")
    time.sleep(3.5)  # alice's model call ends meanwhile: nothing of hers is posted, bob and carol are never asked
    assert rig.agent_posts(root["ts"]) == []
    assert rig.asked("bob") == 0 and rig.asked("carol") == 0
    notices = [p.args["text"] for p in rig.slack.posts(rig.channel, root["ts"])]
    assert notices == [f"Stopped by <@{ASKER}>."]
    # Never resumed after a restart.
    rig.bridge.restart()
    time.sleep(1.5)
    assert rig.asked("alice") == 1 and rig.asked("bob") == 0
    assert rig.status(root["ts"]) == "stopped"


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_after_kill_9_a_stop_of_the_resumed_turn_cancels_the_run_the_killed_process_began(
    rig: Rig, tmp_path: Path
) -> None:
    """The process is killed in the middle of alice's send and started again: it resumes the turn, waiting for
    alice's run to end before looking her reply up. Before, a stop then cancelled only the sends of the resumed
    run (none): alice's run went on."""
    rig.letta.set_delay(rig.agents["alice"], 8.0)
    root = rig.mention("a long question")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    rig.bridge.kill()
    rig.bridge.start(tmp_path / "again.log")
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"]) == ["processing"] * 2)
    rig.session_stopped(root["ts"], ASKER)
    wait_status(rig, root["ts"], "stopped")
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["active"])
    assert [p.args["text"] for p in rig.slack.posts(rig.channel, root["ts"])] == [f"Stopped by <@{ASKER}>."]
    rig.letta.wait_for(lambda: bool(rig.letta.cancels), timeout=5)
    assert [(kind, ident) for kind, ident, _runs in rig.letta.cancels] == [("agents", rig.agents["alice"])]
    time.sleep(1.0)
    assert (rig.asked("alice"), rig.asked("bob"), rig.asked("carol")) == (1, 0, 0)


def test_stop_by_someone_not_allowed_is_refused(rig: Rig) -> None:
    rig.letta.set_delay(rig.agents["alice"], 1.5)
    root = rig.mention("keep going")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    rig.session_stopped(root["ts"], STRANGER)
    rig.slack.wait_for(lambda: any(e["user"] == STRANGER for e in rig.slack.ephemerals))
    refusal = next(e for e in rig.slack.ephemerals if e["user"] == STRANGER)
    assert "may stop this" in refusal["text"] and f"<@{ASKER}>" in refusal["text"]
    wait_status(rig, root["ts"], "done")
    assert len(rig.agent_posts(root["ts"])) == 3
    assert rig.letta.cancels == []


def test_an_admin_may_stop_someone_elses_turn_and_queued_turns_go_too(rig: Rig) -> None:
    rig.letta.set_delay(rig.agents["alice"], 2.0)
    root = rig.mention("first")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    event, _ = rig.bridge.mention("second, queued", rig.channel, user=ASKER, thread_ts=root["ts"])
    rig.session_stopped(root["ts"], ADMIN)
    wait_status(rig, root["ts"], "stopped")
    wait_status(rig, event["ts"], "stopped")
    time.sleep(2.5)
    assert rig.asked("alice") == 1 and rig.asked("bob") == 0


@pytest.mark.parametrize("rig", [(False, {})], indirect=True)
def test_where_sessions_are_refused_reactions_status_and_a_stop_button_stand_in(rig: Rig) -> None:
    rig.letta.set_delay(rig.agents["alice"], 3.0)
    root = rig.mention("slow one")
    rig.slack.wait_for(lambda: "eyes" in rig.slack.reactions(rig.channel, root["ts"]))
    refused = rig.slack.calls_to("agents.sessions.setStatus")
    assert [c.error for c in refused] == ["missing_scope"]
    rig.slack.wait_for(lambda: bool(rig.slack.ephemerals))
    assert rig.slack.ephemerals[0]["user"] == ASKER
    rig.slack.wait_for(lambda: bool(rig.slack.calls_to("assistant.threads.setStatus")))
    url = rig.press_stop(ASKER)
    wait_status(rig, root["ts"], "stopped")
    rig.slack.wait_for(lambda: any(p["_url"] == url for p in rig.slack.response_posts))
    answer = next(p for p in rig.slack.response_posts if p["_url"] == url)
    assert answer["text"] == "Stopped 1 turn." and answer.get("replace_original") is True
    rig.slack.wait_for(lambda: "black_square_for_stop" in rig.slack.reactions(rig.channel, root["ts"]))
    assert "eyes" not in rig.slack.reactions(rig.channel, root["ts"])
    # A second turn does not ask Slack for a session again: the refusal is remembered and logged once.
    second = rig.mention("quick one")
    wait_status(rig, second["ts"], "done", "partial", timeout=15)
    assert len(rig.slack.calls_to("agents.sessions.setStatus")) == 1
    assert rig.bridge.logs().count("slack agent sessions unavailable") == 1


def test_stop_said_in_the_thread_stops_it(rig: Rig) -> None:
    rig.letta.set_delay(rig.agents["alice"], 3.0)
    root = rig.mention("another slow one")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    event, response = rig.bridge.mention("stop", rig.channel, user=ASKER, thread_ts=root["ts"])
    assert response.status_code == 200
    wait_status(rig, root["ts"], "stopped")
    assert rig.status(event["ts"]) == ""  # the word is not a turn
