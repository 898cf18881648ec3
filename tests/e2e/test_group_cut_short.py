"""A group send cut short on a 0.11.x server (the turn's deadline here; a Stop or a grace run out alike) goes on at
Letta, and a group send lists no run there: a turn of another channel whose group shares a member waits until
the members' histories show the send has ended before it asks that member (docs/guarantees.md), instead of
asking her while she still answers the first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.cut_relay import CutOnce
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

FIRST, SECOND = "C0CUTSH01", "C0CUTSH02"


def _names(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [p.args["username"] for p in slack.posts(channel, ts) if p.args.get("username")]


@contextmanager
def alice_busy(tmp_path: Path, **settings: str) -> Iterator[tuple[FakeSlack, FakeLetta, BridgeProcess, dict[str, Any]]]:
    """FIRST bound to a group of alice, SECOND to alice and carol; alice five seconds into answering FIRST's
    mention (the event is yielded last), her later answers instant."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        alice, carol = letta.add_agent("alice"), letta.add_agent("carol")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **settings)
        assert run_cli(env, "channels", "connect", FIRST, letta.add_group([alice])).returncode == 0
        assert run_cli(env, "channels", "connect", SECOND, letta.add_group([alice, carol])).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(alice, 5.0)
            first, _ = bridge.mention("a long one", FIRST)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            letta.set_delay(alice, 0.0)  # her run in flight keeps its five seconds
            yield slack, letta, bridge, first
        finally:
            bridge.stop()


def test_a_group_sharing_a_member_waits_for_a_group_send_cut_short(tmp_path: Path) -> None:
    with alice_busy(tmp_path, TURN_DEADLINE_SECONDS="3") as (slack, letta, bridge, first):
        slack.wait_for(lambda: len(slack.posts(FIRST, first["ts"])) == 1, 10)  # the deadline, at 3 s
        assert "did not finish within 3 seconds" in slack.posts(FIRST, first["ts"])[0].args["text"]
        assert [i.agent_name for i in letta.inputs] == ["alice"]  # still answering at Letta
        second, _ = bridge.mention("and now?", SECOND)
        slack.wait_for(lambda: _names(slack, SECOND, second["ts"]) == ["alice", "carol"], 20)
        time.sleep(0.3)
        assert letta.overlaps == [], "alice was asked while the send cut short still ran"
        [_, again] = [i for i in letta.inputs if i.agent_name == "alice"]
        assert again.text.endswith("and now?")


def each_answered_once(slack: FakeSlack, letta: FakeLetta, bridge: BridgeProcess, first: dict[str, Any]) -> None:
    """SECOND mentioned through `bridge`: both threads answered, alice asked once for each, never two at once."""
    second, _ = bridge.mention("and now?", SECOND)
    slack.wait_for(lambda: _names(slack, SECOND, second["ts"]) == ["alice", "carol"], 40)
    slack.wait_for(lambda: _names(slack, FIRST, first["ts"]) == ["alice"], 40)
    time.sleep(0.3)
    assert letta.overlaps == [], "alice was asked while the killed process's group send still ran"
    assert [i.agent_name for i in letta.inputs].count("alice") == 2


@pytest.mark.slow  # kill -9 mid-send: .ci/run's slow stage
def test_a_group_send_a_killed_process_left_going_is_waited_for_after_the_restart(tmp_path: Path) -> None:
    """The next process learns it from the journal (the group step still `sending`) before any turn runs."""
    with alice_busy(tmp_path, LETTA_RECOVERY_WAIT_SECONDS="30") as (slack, letta, bridge, first):
        bridge.kill()
        bridge.restart()
        each_answered_once(slack, letta, bridge, first)


@pytest.mark.slow  # two processes, one killed mid-send
@pytest.mark.timeout(120)
def test_a_live_process_waits_for_the_group_send_a_killed_one_left_going(pg_server: PgServer, tmp_path: Path) -> None:
    """Two processes on one Postgres database: the one killed mid-send left its record of the send to alice; the
    survivor takes it over once the dead one's heartbeat has run out, and learns from the journal that it was a
    group send, which lists no run: it watches the members before it asks alice."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        alice, carol = letta.add_agent("alice"), letta.add_agent("carol")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                       LETTA_RECOVERY_WAIT_SECONDS="30", **postgres_env(pg_server.create_database()))
        assert run_cli(env, "channels", "connect", FIRST, letta.add_group([alice])).returncode == 0
        assert run_cli(env, "channels", "connect", SECOND, letta.add_group([alice, carol])).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        try:
            letta.set_delay(alice, 7.0)  # longer than the dead process's heartbeat lasts (TURN_LEASE_SECONDS=2)
            first, _ = web1.mention("a long one", FIRST)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            letta.set_delay(alice, 0.0)
            web1.kill()
            each_answered_once(slack, letta, web2, first)
        finally:
            web1.stop()
            web2.stop()


def test_a_group_stream_dropped_mid_answer_posts_every_members_reply_from_their_histories(tmp_path: Path) -> None:
    """0.11.x group send, streamed, the connection dropped on the way while bob's reply came (a proxy, a load
    balancer): only alice was posted, with "the answer may be lost. Ask again", though Letta ran the group to its
    end and stored each member's reply; asking again would ask all three a second time."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        alice, bob, carol = (letta.add_agent(name) for name in ("alice", "bob", "carol"))
        for agent in (alice, bob, carol):
            letta.set_delay(agent, 0.3)
        with CutOnce(int(letta.base_url.rsplit(":", 1)[1]), b"bob says hi") as relay:
            env = base_env(slack.api_url, relay.url, tmp_path / "bridge.db", LETTA_RECOVERY_WAIT_SECONDS="20")
            assert run_cli(env, "channels", "connect", FIRST, letta.add_group([alice, bob, carol])).returncode == 0
            bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
            try:
                event, _ = bridge.mention("all of you", FIRST)
                slack.wait_for(lambda: _names(slack, FIRST, event["ts"]) == ["alice", "bob", "carol"], 30)
                time.sleep(0.5)
                assert relay.cut.is_set(), "the stream was never cut"
                texts = [p.args["text"] for p in slack.posts(FIRST, event["ts"])]
                assert not any("Ask again" in text for text in texts), texts
                assert [i.agent_name for i in letta.inputs] == ["alice", "bob", "carol"], "a member asked twice"
            finally:
                bridge.stop()


def test_a_group_whose_member_was_deleted_is_said_before_the_deadline(tmp_path: Path) -> None:
    """0.11.x keeps a deleted agent in its group, and a send to that group then never answers (observed on a real
    0.11.7): every mention waited for its deadline (10 minutes by default) and was told only that the agents did
    not finish. A group send silent for a quarter of the deadline (at most 30 s) has its members looked up."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        group = letta.add_group([alice, bob])
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", TURN_DEADLINE_SECONDS="8")
        assert run_cli(env, "channels", "connect", FIRST, group).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            # bob deleted: his lookup answers as 0.11.7 does (error-agent-get-unknown-wellformed.json), and the
            # group send hangs, as the real one did
            letta.fail_next("GET", rf"/v1/agents/{bob}$", 404, {"detail": f"Agent with ID {bob} not found"})
            letta.hang_next("POST", rf"/v1/groups/{group}/messages(/stream)?")
            event, _ = bridge.mention("anyone?", FIRST)
            slack.wait_for(lambda: len(slack.posts(FIRST, event["ts"])) == 1, 7)  # before the 8 s deadline
            text = slack.posts(FIRST, event["ts"])[0].args["text"]
            assert "Letta does not know bob" in text and "deleted" in text, text
        finally:
            bridge.stop()
