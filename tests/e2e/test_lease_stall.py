"""A process that stalls (frozen by its host, its event loop blocked) past its lease while posting a turn's reply:
another process takes the binding over and finishes the turn; the stalled one, when it runs again, must post
nothing more of that turn. The race is the thawed worker's next post against its lease keeper's first renewal,
so the freeze is repeated a few times (tests/unit/test_leases.py has the deterministic case)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

pytestmark = pytest.mark.slow  # several processes, one frozen: .ci/run's slow stage

CHANNEL = "C0STALL01"
PARTS = 4
ROUNDS = 4
PARAGRAPH = "word " * 600  # 3000 characters: a reply of several paragraphs is posted as several Slack messages


@pytest.mark.timeout(180)
def test_a_process_stalled_past_its_lease_posts_nothing_more_of_the_turn(pg_server: PgServer, tmp_path: Path) -> None:
    """Before: the thawed process ran on for a moment before its lease keeper found the lease taken over, and
    posted again the part after the one in flight (about one freeze in three: one run in five of this test passed)."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.set_reply(alice, lambda text: "\n\n".join(f"part {n} {PARAGRAPH}" for n in range(PARTS)))
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                       **postgres_env(pg_server.create_database()))
        assert run_cli(env, "channels", "connect", CHANNEL, letta.add_group([alice])).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        assert web1.proc is not None
        try:

            def parts(thread_ts: str) -> list[str]:
                return [str(p.args["text"])[:7] for p in slack.posts(CHANNEL, thread_ts) if p.args.get("username")]

            threads = []
            for _ in range(ROUNDS):
                slack.answer_delays["chat.postMessage"] = 1.0  # each part lands, then Slack is slow to say so
                event, answered = web1.mention("hello", channel=CHANNEL)
                assert answered.status_code == 200
                thread = str(event["ts"])
                threads.append(thread)
                slack.wait_for(lambda: len(parts(thread)) == 1, 20)
                web1.proc.send_signal(signal.SIGSTOP)  # frozen with its first part's answer on the way
                try:
                    slack.answer_delays["chat.postMessage"] = 0.0
                    slack.wait_for(lambda: len(parts(thread)) >= PARTS, 30)  # web2 took the turn over
                finally:
                    web1.proc.send_signal(signal.SIGCONT)
                time.sleep(2.0)  # what the thawed process still posts shows up now
            doubled = {t: parts(t) for t in threads if len(parts(t)) != PARTS}
            assert doubled == {}, "the thawed process posted parts again"
            assert len(letta.inputs) == ROUNDS, "alice was asked twice"
            assert "Traceback" not in web1.logs() + web2.logs()
        finally:
            web1.stop()
            web2.stop()


@pytest.mark.timeout(120)
def test_a_process_frozen_mid_send_does_not_keep_its_agent_lock_from_the_process_taking_over(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A process frozen (or its host gone without closing its connections) holds its agent's advisory lock for as
    long as PostgreSQL keeps its session. Before: the process taking the binding over waited on that lock until
    the turn's deadline (10 minutes), and every later turn of the agent did the same."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 3.0)
        letta.set_reply(alice, lambda text: "alice answers")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                       **postgres_env(pg_server.create_database()))
        assert run_cli(env, "channels", "connect", CHANNEL, letta.add_group([alice])).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        assert web1.proc is not None
        try:
            _, answered = web1.mention("hello", channel=CHANNEL)
            assert answered.status_code == 200
            letta.wait_for(lambda: any(i.finished is None for i in letta.inputs), 10)
            web1.proc.send_signal(signal.SIGSTOP)  # for good: its sessions stay open, its lease runs out

            def replies() -> list[str]:
                return [str(p.args["text"]) for p in slack.posts(CHANNEL) if p.args.get("username")]

            slack.wait_for(lambda: bool(replies()), 25)  # taken over: the answer is found in alice's history
            _, answered = web2.mention("and now?", channel=CHANNEL)  # a new send to alice: it needs her lock
            assert answered.status_code == 200
            slack.wait_for(lambda: len(replies()) == 2, 25)
            assert replies() == ["alice answers", "alice answers"]
            assert len(letta.inputs) == 2, "alice was asked twice"
        finally:
            web1.proc.send_signal(signal.SIGCONT)
            web1.stop()
            web2.stop()
