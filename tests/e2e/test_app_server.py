"""The bridge on a Letta App Server (issue 15): LETTA_BASE_URL=ws://..., the fake App Server of
tests/fakes/appserver.py (captured frames). `check` names it, `channels connect` takes its agent-local ids, a
mention is answered by each agent of the channel in order, in the thread's own conversations, and a bridge killed
mid-turn asks nobody twice."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.turn_input import THREAD_HISTORY_HEADER
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.quoting import read

_channels = itertools.count(1)


@dataclass
class Rig:
    slack: FakeSlack
    app: FakeAppServer
    bridge: BridgeProcess
    env: dict[str, str]

    def bind(self, *agents: tuple[str, str], options: tuple[str, ...] = ()) -> tuple[str, dict[str, str]]:
        """A new channel bound to new agents (name, mode), in that order, with `channels connect` options."""
        channel = f"C{next(_channels):04d}APPS"
        ids = {name: self.app.add_agent(name, mode) for name, mode in agents}
        self.slack.add_channel(channel, f"chan-{channel.lower()}")
        done = run_cli(self.env, "channels", "connect", channel, *ids.values(), *options)
        assert done.returncode == 0, done.stderr + done.stdout
        return channel, ids

    def managed(self, pattern: str, manager: tuple[str, str], *agents: tuple[str, str],
                options: tuple[str, ...] = ()) -> tuple[str, dict[str, str]]:
        """A bridge-defined group: `agents` with `manager` (name, mode) as its manager."""
        boss = self.app.add_agent(*manager)
        channel, ids = self.bind(*agents, options=("--pattern", pattern, "--manager", boss, *options))
        return channel, {**ids, manager[0]: boss}

    def mention(self, channel: str, text: str, **kwargs: Any) -> str:
        event, response = self.bridge.mention(text, channel, **kwargs)
        self.slack.remember_event(event)  # in the channel's history, as Slack keeps it
        assert response.status_code == 200
        return str(event["ts"])

    def done(self, channel: str, ts: str, timeout: float = 20.0) -> set[str]:
        self.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & self.slack.reactions(channel, ts)), timeout)
        return self.slack.reactions(channel, ts)

    def said(self, channel: str, thread_ts: str) -> list[tuple[str, str]]:
        return [(p.args.get("username", ""), p.args["text"]) for p in self.slack.posts(channel, thread_ts)]

    def inputs(self, agent_id: str) -> list[Any]:
        return [t for t in self.app.inputs if t.agent_id == agent_id]

    def status(self, ts: str) -> str:
        with sqlite3.connect(self.env["DATABASE_URL"].removeprefix("sqlite:///")) as db:
            row = db.execute("SELECT status FROM turns WHERE message_ts=?", (ts,)).fetchone()
        return str(row[0]) if row else ""

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.app.received if isinstance(f, dict) and f.get("type") == kind]


def _rig(tmp: Path, **settings: str) -> Iterator[Rig]:
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    app = FakeAppServer(scale=0.001)
    app.start()
    env = base_env(slack.api_url, app.url, tmp / "bridge.db", **{"TURN_DEADLINE_SECONDS": "30", **settings})
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield Rig(slack, app, bridge, env)
    finally:
        bridge.stop()
        app.stop()
        slack.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from _rig(tmp_path_factory.mktemp("app-server"))


def test_check_names_the_app_server_its_version_and_agents(rig: Rig) -> None:
    rig.app.add_agent("zed")
    done = run_cli(rig.env, "check")
    lines = done.stdout.splitlines()
    [letta] = [line for line in lines if line.startswith("ok   letta:")]
    assert f"Letta App Server reachable at {rig.app.url}, version 0.32.18, protocol 1" in letta
    [key] = [line for line in lines if line.startswith("ok   letta key:")]
    assert "not needed" in key and f"{len(rig.app.agents)} agents on the server" in key


def test_channels_connect_takes_agent_local_ids_and_refuses_others(rig: Rig) -> None:
    channel, ids = rig.bind(("ann", "ok"), ("ben", "ok"))
    listed = run_cli(rig.env, "channels", "list")
    assert all(agent in listed.stdout for agent in ids.values()) and "bridge" in listed.stdout
    rest_shaped = run_cli(rig.env, "channels", "connect", channel, "agent-00000000-0000-4000-8000-000000000000")
    assert rest_shaped.returncode != 0
    assert "is not an agent id of this Letta App Server: expected agent-local-<uuid>" in rest_shaped.stderr
    group = run_cli(rig.env, "channels", "connect", channel, "group-00000000-0000-4000-8000-000000000000")
    assert group.returncode != 0 and "no groups" in group.stderr
    unknown = run_cli(rig.env, "channels", "connect", channel, "agent-local-00000000-0000-4000-8000-000000000000")
    assert unknown.returncode != 0 and "was not found" in unknown.stderr


def test_a_rest_server_refuses_agent_local_ids_and_http_finds_the_app_server(rig: Rig, tmp_path: Path) -> None:
    rest = FakeLetta(version="0.16.8")
    rest.start()
    try:
        env = dict(rig.env, LETTA_BASE_URL=rest.base_url, DATABASE_URL=f"sqlite:///{tmp_path / 'rest.db'}")
        done = run_cli(env, "channels", "connect", "C0REST", "agent-local-00000000-0000-4000-8000-000000000000")
    finally:
        rest.stop()
    assert done.returncode != 0
    said = f"is an agent id of a Letta App Server, but the Letta server at {rest.base_url} is a REST server"
    assert said in done.stderr
    # http:// to an App Server: told apart by GET /app-server-info
    http = dict(rig.env, LETTA_BASE_URL=rig.app.url.replace("ws://", "http://"))
    assert "ok   letta: Letta App Server reachable at" in run_cli(http, "check").stdout


def test_each_agent_answers_in_order_in_the_threads_own_conversations(rig: Rig) -> None:
    channel, ids = rig.bind(("alice", "ok"), ("bob", "ok"), ("carol", "ok"))
    root = rig.mention(channel, "what should we ship first?")
    assert rig.done(channel, root) == {"white_check_mark"}
    assert rig.said(channel, root) == [("alice", "alice says hi"), ("bob", "bob says hi"), ("carol", "carol says hi")]
    first = {name: rig.inputs(agent) for name, agent in ids.items()}
    assert all(len(turns) == 1 for turns in first.values())
    conversations = {name: turns[0].conversation for name, turns in first.items()}
    assert len(set(conversations.values())) == 3 and "default" not in conversations.values()
    for name, conv in conversations.items():
        assert rig.app.convs[conv].agent_id == ids[name]
        assert rig.app.convs[conv].summary == f"Slack {channel} {root}"  # the thread's key
    assert first["alice"][0].text.endswith("what should we ship first?")
    assert "Replies in your group since you last spoke:" in first["bob"][0].text
    assert "alice says hi" in first["bob"][0].text and "bob says hi" in first["carol"][0].text
    sent = [f for f in rig.app.received if isinstance(f, dict) and f.get("type") == "input"]
    assert all(f["payload"]["client_tool_allowlist"] == [] for f in sent)  # tools off

    again = rig.mention(channel, "and then?", thread_ts=root)
    assert rig.done(channel, again) == {"white_check_mark"}
    everyone = [("alice", "alice says hi"), ("bob", "bob says hi"), ("carol", "carol says hi")]
    assert rig.said(channel, root)[3:] == everyone
    for name, agent in ids.items():
        turns = rig.inputs(agent)
        assert len(turns) == 2 and turns[1].conversation == conversations[name]  # the thread's, reused
    assert "carol says hi" in rig.inputs(ids["alice"])[1].text  # what alice missed of the thread

    other = rig.mention(channel, "a new thread")
    assert rig.done(channel, other) == {"white_check_mark"}
    assert rig.inputs(ids["alice"])[2].conversation != conversations["alice"]


def test_a_failing_model_is_said_in_plain_words(rig: Rig) -> None:
    channel, _ = rig.bind(("dora", "500"), ("eve", "ok"))
    root = rig.mention(channel, "hello")
    assert rig.done(channel, root) == {"warning"}
    said = rig.said(channel, root)
    assert said[-1] == ("eve", "eve says hi")
    [failure] = [text for _, text in said if "dora" in text]
    assert "the model provider failed" in failure and "{" not in failure
    metrics = httpx.get(f"{rig.bridge.url}/metrics", timeout=5).text  # App Server calls are metered too
    assert 'method="WS",route="turn"' in metrics and 'method="WS",route="conversation_create"' in metrics
    assert 'bridge_letta_errors_total{kind="run_failed"}' in metrics


def test_a_stuck_conversation_is_replaced_and_the_message_sent_once_more(rig: Rig) -> None:
    channel, ids = rig.bind(("finn", "ok"),)
    root = rig.mention(channel, "first")
    rig.done(channel, root)
    [turn] = rig.inputs(ids["finn"])
    stuck = turn.conversation
    rig.app.call(setattr, rig.app.convs[stuck], "stuck", f"Conversation {stuck} already has an active run (x)")
    again = rig.mention(channel, "second", thread_ts=root)
    assert rig.done(channel, again) == {"white_check_mark"}
    assert rig.said(channel, root)[-1] == ("finn", "finn says hi")
    [_, renewed] = rig.inputs(ids["finn"])
    assert renewed.conversation != stuck and rig.app.convs[renewed.conversation].summary == f"Slack {channel} {root}"


@pytest.mark.slow
def test_killed_mid_turn_then_restarted_nobody_is_asked_twice(tmp_path: Path) -> None:
    for rig in _rig(tmp_path):
        channel, ids = rig.bind(("gus", "ok"), ("hal", "slow:2"), ("ivy", "ok"))
        root = rig.mention(channel, "go")
        rig.slack.wait_for(lambda: len(rig.inputs(ids["hal"])) == 1, 20)
        rig.bridge.kill()  # hal's model call is in flight: the socket closes under it
        rig.bridge.restart()
        assert rig.done(channel, root, timeout=30)
        said = rig.said(channel, root)
        assert said[0] == ("gus", "gus says hi") and said[-1] == ("ivy", "ivy says hi")
        assert [len(rig.inputs(agent)) for agent in ids.values()] == [1, 1, 1]  # nobody asked twice
        assert any("hal" in text for _, text in said[1:-1])  # hal's cut-off answer, or why there is none
        # hal's conversation is stuck on the server now; the thread's next turn gets a new one
        again = rig.mention(channel, "again", thread_ts=root)
        assert rig.done(channel, again) == {"white_check_mark"}
        assert rig.said(channel, root)[-3:] == [("gus", "gus says hi"), ("hal", "hal says hi"), ("ivy", "ivy says hi")]
        cut, renewed = rig.inputs(ids["hal"])
        assert renewed.conversation != cut.conversation
        # ...which starts empty: hal is told what the thread said before it, as any new conversation is
        so_far = dict(read(renewed.text).blocks)[THREAD_HISTORY_HEADER]
        assert so_far[:2] == [("person", "maria", "@Letta Bridge go"), ("agent", "gus", "gus says hi")]
        assert "Earlier in this Slack thread" not in rig.inputs(ids["gus"])[1].text  # its conversation goes on


@pytest.mark.slow
def test_an_answer_the_server_cut_when_the_bridge_was_killed_is_posted_as_possibly_partial(tmp_path: Path) -> None:
    """Killed while hal answers: the server cancels the turn and keeps its first words (README §9). The restarted
    bridge finds them by the send's id and posts them, telling the thread they may be only part of the answer, as
    it does when the connection drops under a live bridge; never as hal's whole answer."""
    for rig in _rig(tmp_path):
        channel, ids = rig.bind(("hal", "slow:0.5"),)
        root = rig.mention(channel, "go")
        rig.slack.wait_for(lambda: len(rig.inputs(ids["hal"])) == 1, 20)
        rig.bridge.kill()
        cut = rig.inputs(ids["hal"])[0].conversation
        rig.slack.wait_for(lambda: any(m["message_type"] == "assistant_message" for m in rig.app.history_of(cut)), 10)
        rig.bridge.restart()
        assert rig.done(channel, root, timeout=30) == {"warning"}
        said = rig.said(channel, root)
        assert said[0] == ("hal", "hal")
        assert "may be part of the answer" in said[1][1], said
        assert len(rig.inputs(ids["hal"])) == 1


@pytest.mark.slow
def test_a_reply_cut_mid_stream_keeps_the_words_its_draft_showed(tmp_path: Path) -> None:
    """Killed while hal's reply grows in its draft: the server keeps only the chunk in flight (observed 0.34.12:
    a reply cut at its 70th word was kept as "w70"). The restarted bridge wrote that chunk over the draft, so the
    thread lost the words it had been shown for one stray word; the draft now stays, and the thread is told why."""
    for rig in _rig(tmp_path, LETTA_STREAM_TOKENS="true", SLACK_LIVE_EDIT_SECONDS="0"):
        channel, ids = rig.bind(("hal", "drip:0.6"),)
        root = rig.mention(channel, "go")

        def shown() -> list[str]:
            return [m.get("text", "") for m in rig.slack.messages(channel, root) if m.get("bot_id") and m["ts"] != root]

        rig.slack.wait_for(lambda: any(t.startswith("hal says") for t in shown()), 20)
        rig.bridge.kill()
        cut = rig.inputs(ids["hal"])[0].conversation
        rig.slack.wait_for(lambda: any(m["message_type"] == "assistant_message" for m in rig.app.history_of(cut)), 10)
        rig.bridge.restart()
        assert rig.done(channel, root, timeout=30) == {"warning"}
        texts = shown()
        assert texts[0].startswith("hal says"), texts
        assert len(texts) == 2 and "cut off" in texts[1] and "Ask again" in texts[1], texts
        assert len(rig.inputs(ids["hal"])) == 1


def test_a_bridge_defined_supervisor_hears_its_workers_and_answers_last(rig: Rig) -> None:
    channel, ids = rig.managed("supervisor", ("sam", "ok"), ("wes", "ok"), ("wyn", "ok"))
    listed = run_cli(rig.env, "channels", "list")
    assert "[supervisor manager sam] (wes, wyn)" in listed.stdout
    root = rig.mention(channel, "plan the launch")
    assert rig.done(channel, root) == {"white_check_mark"}
    said = rig.said(channel, root)
    assert sorted(said[:2]) == [("wes", "wes says hi"), ("wyn", "wyn says hi")] and said[2] == ("sam", "sam says hi")
    assert [len(rig.inputs(ids[n])) for n in ("wes", "wyn", "sam")] == [1, 1, 1]
    [asked] = rig.inputs(ids["sam"])
    assert "Your workers answered:" in asked.text and "wes says hi" in asked.text and "wyn says hi" in asked.text
    assert asked.text.index("plan the launch") < asked.text.index("Your workers answered:")  # the documented format
    assert len({t.conversation for n in ids for t in rig.inputs(ids[n])}) == 3  # one conversation each


def test_a_bridge_defined_dynamic_group_speaks_as_its_manager_chooses(rig: Rig) -> None:
    channel, ids = rig.managed(
        "dynamic", ("dee", "choose:kit"), ("jo", "ok"), ("kit", "ok"), options=("--termination-token", "DONE!")
    )
    root = rig.mention(channel, "who knows?")
    assert rig.done(channel, root) == {"white_check_mark"}
    assert rig.said(channel, root) == [("kit", "kit says hi")]  # the manager's choices are never posted
    choices = rig.inputs(ids["dee"])
    assert len(choices) == 2 and "You choose who speaks next in this group. Members: jo, kit" in choices[0].text
    assert "Said so far in this turn:" in choices[1].text and "kit says hi" in choices[1].text
    assert rig.inputs(ids["jo"]) == [] and len(rig.inputs(ids["kit"])) == 1


def test_a_broadcast_asks_every_agent_at_once(rig: Rig) -> None:
    channel, ids = rig.bind(("bo", "slow:1"), ("cy", "ok"), ("di", "ok"), options=("--pattern", "broadcast"))
    root = rig.mention(channel, "all hands")
    assert rig.done(channel, root) == {"white_check_mark"}
    said = rig.said(channel, root)
    assert sorted(said) == [("bo", "bo says hi"), ("cy", "cy says hi"), ("di", "di says hi")]
    assert said[-1] == ("bo", "bo says hi")  # the slow one last: nobody waited for it
    assert all("Replies in your group" not in rig.inputs(agent)[0].text for agent in ids.values())


def test_a_pattern_that_cannot_work_is_refused_and_the_binding_kept(rig: Rig) -> None:
    channel, ids = rig.bind(("lu", "ok"), ("mo", "ok"))
    other = rig.app.add_agent("ned")
    refusals = {
        ("--pattern", "supervisor"): "a supervisor group needs a manager",
        ("--pattern", "dynamic", "--manager", ids["lu"]): "the manager is listed among the agents too",
        ("--pattern", "broadcast", "--manager", other): "a broadcast group has no manager",
        ("--pattern", "supervisor", "--manager", other, "--max-turns", "2"): "--max-turns goes with round_robin",
        ("--pattern", "round_robin", "--termination-token", "X"): "--termination-token goes with the dynamic",
        ("--pattern", "dynamic", "--manager", "agent-local-00000000-0000-4000-8000-000000000000"): "was not found",
        ("--manager", other): "go with --pattern",
        ("--pattern", "round_robin", "--max-turns", "0"): "--max-turns is a number from 1 to 50",
    }
    for options, said in refusals.items():
        done = run_cli(rig.env, "channels", "connect", channel, ids["lu"], ids["mo"], *options)
        assert done.returncode != 0 and said in done.stderr, (options, done.stderr)
    listed = [line for line in run_cli(rig.env, "channels", "list").stdout.splitlines() if channel in line]
    assert len(listed) == 1 and "[" not in listed[0]  # still the plain list it was
    # round robin with max_turns: the list wraps around
    done = run_cli(rig.env, "channels", "connect", channel, ids["lu"], ids["mo"], "--pattern", "round_robin",
                   "--max-turns", "3")
    assert done.returncode == 0 and "max turns: 3" in done.stdout, done.stderr
    root = rig.mention(channel, "count off")
    assert rig.done(channel, root) == {"white_check_mark"}
    assert [name for name, _ in rig.said(channel, root)] == ["lu", "mo", "lu"]


def test_stop_aborts_the_app_server_turn_and_it_is_never_resumed(rig: Rig) -> None:
    channel, ids = rig.bind(("stu", "hang"), ("tia", "ok"))
    root = rig.mention(channel, "a question that never ends")
    rig.slack.wait_for(lambda: len(rig.inputs(ids["stu"])) == 1, 20)
    [turn] = rig.inputs(ids["stu"])
    _, response = rig.bridge.mention("stop", channel, thread_ts=root)
    assert response.status_code == 200
    rig.slack.wait_for(lambda: rig.status(root) == "stopped", 20)
    # The stop itself aborted the thread's conversation (not only the cancelled task's clean-up), with its agent.
    rig.slack.wait_for(lambda: f"letta run cancelled agent={ids['stu']} conversation={turn.conversation}"
                       in rig.bridge.logs(), 10)
    aborts = [f["runtime"] for f in rig.sent("abort_message")]
    assert aborts and all(a == {"agent_id": ids["stu"], "conversation_id": turn.conversation} for a in aborts)
    rig.slack.wait_for(lambda: [p for _, p in rig.said(channel, root)] == ["Stopped by <@U0123ABCD>."], 10)
    assert rig.inputs(ids["tia"]) == []  # the next agent is never asked
    rig.bridge.restart()
    time.sleep(1.5)
    assert rig.status(root) == "stopped" and len(rig.inputs(ids["stu"])) == 1 and rig.inputs(ids["tia"]) == []


def test_letta_max_turns_counts_a_round_robin_binding_without_its_own(tmp_path: Path) -> None:
    """revV: LETTA_MAX_TURNS was never given to the App Server's runner: a round robin connected without
    --max-turns asked each member once, where patterns.md says the setting's count, wrapping around."""
    for rig in _rig(tmp_path, LETTA_MAX_TURNS="3"):
        channel, _ = rig.bind(("lu", "ok"), ("mo", "ok"), options=("--pattern", "round_robin"))
        root = rig.mention(channel, "count off")
        assert rig.done(channel, root) == {"white_check_mark"}
        assert [name for name, _ in rig.said(channel, root)] == ["lu", "mo", "lu"]
