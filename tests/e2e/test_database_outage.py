"""Postgres restarted under a running bridge, as a platform's maintenance or failover does: the turn in flight
(its Letta send under way) is answered once, by the same process, with the default lease."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import NO_BINARIES, PgServer

pytestmark = pytest.mark.slow  # restarts a server of its own mid-turn: .ci/run's slow stage

CHANNEL = "C0OUTAGE1"
OTHER = "C0OUTAGE2"


@pytest.mark.parametrize("down", [0.0, 10.0])
@pytest.mark.timeout(120)
def test_a_postgres_restart_mid_turn_loses_and_repeats_nothing(tmp_path: Path, down: float) -> None:
    """Before: a restart ended the agent lock's session under the send, and leaving the lock crashed the turn
    after Letta had answered (the thread got "unexpected error"); an outage of 10 s outlasted the runs made
    again after 1 s and 5 s, and the turn was left for the next start (the reply never came)."""
    server = PgServer.find()
    if server is None:
        pytest.skip(NO_BINARIES)
    server.start()  # a server of its own: the session's is shared with other tests
    try:
        with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
            alice = letta.add_agent("alice")
            letta.set_delay(alice, 3.0)
            letta.set_reply(alice, lambda text: "alice answers")
            env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                           DATABASE_URL=server.create_database())  # TURN_LEASE_SECONDS left at its 30 s
            assert run_cli(env, "channels", "connect", CHANNEL, letta.add_group([alice])).returncode == 0
            web = BridgeProcess(env).start(tmp_path / "web.log")
            try:
                _, answered = web.mention("hello", channel=CHANNEL)
                assert answered.status_code == 200
                letta.wait_for(lambda: any(i.finished is None for i in letta.inputs), 10)
                server.restart(down)

                def replies() -> list[tuple[str, str]]:
                    posts = slack.posts(CHANNEL)
                    return [(p.args["username"], p.args["text"]) for p in posts if p.args.get("username")]

                slack.wait_for(lambda: bool(replies()), 30)
                time.sleep(1.0)  # anything posted twice would show up now
                assert replies() == [("alice", "alice answers")]
                assert not [p for p in slack.posts(CHANNEL) if "unexpected error" in str(p.args.get("text"))]
                assert len(letta.inputs) == 1, "alice was asked twice"
            finally:
                web.stop()
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_a_postgres_restart_mid_send_does_not_let_another_process_ask_the_agent_at_once(tmp_path: Path) -> None:
    """Two channels share bob, each run by its own process. A restart ends every session, and with them the advisory
    lock held for web1's send to bob, which Letta is still answering. Before: web2's turn for the other channel
    took bob's lock at once and bob had two sends in flight."""
    server = PgServer.find()
    if server is None:
        pytest.skip(NO_BINARIES)
    server.start()
    try:
        with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
            bob = letta.add_agent("bob")
            letta.set_delay(bob, 6.0)
            letta.set_reply(bob, lambda text: "bob answers")
            env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                           DATABASE_URL=server.create_database())
            for channel in (CHANNEL, OTHER):
                assert run_cli(env, "channels", "connect", channel, letta.add_group([bob])).returncode == 0
            web1 = BridgeProcess(env).start(tmp_path / "web1.log")
            web2 = BridgeProcess(env).start(tmp_path / "web2.log")
            try:
                assert web1.mention("one", channel=CHANNEL)[1].status_code == 200
                letta.wait_for(lambda: any(i.finished is None for i in letta.inputs), 10)
                server.restart(0.0)
                web2.wait_healthy()
                assert web2.mention("two", channel=OTHER)[1].status_code == 200

                def replies() -> list[str]:
                    return [str(p.args["text"]) for p in slack.posts() if p.args.get("username")]

                slack.wait_for(lambda: len(replies()) == 2, 40)
                assert letta.overlaps == [], "bob had two sends in flight"
                assert len(letta.inputs) == 2, "bob was asked twice"
            finally:
                web1.stop()
                web2.stop()
    finally:
        server.stop()
