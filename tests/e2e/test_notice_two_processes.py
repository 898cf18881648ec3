"""Two processes on one Postgres database, each given some of Slack's deliveries (revP): a thread's queued mentions
stopped through the process that did not accept them left its "Queued: I'll answer…" notice promising an answer;
and a mention delivered to the process without the channel's lease was never told it is queued (that process's
worker does not run the channel, and only a running worker's turns were given notices)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

CHANNEL = "C0NOTICE2"


@contextmanager
def two_processes(
    pg_server: PgServer, tmp_path: Path, delay: float
) -> Iterator[tuple[FakeSlack, FakeLetta, BridgeProcess, BridgeProcess]]:
    """Two bridges on one Postgres database, the channel bound to alice, who takes `delay` seconds to answer."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        database = postgres_env(pg_server.create_database())
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", **database)
        alice = letta.add_agent("alice")
        letta.set_delay(alice, delay)
        slack.add_channel(CHANNEL, "notice")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        try:
            yield slack, letta, web1, web2
        finally:
            web1.stop()
            web2.stop()


def queued(slack: FakeSlack, thread_ts: str) -> bool:
    return any(p.args["text"].startswith("Queued") for p in slack.posts(CHANNEL, thread_ts))


@pytest.mark.slow  # several processes: .ci/run's slow stage
@pytest.mark.timeout(120)
def test_a_stop_through_the_other_process_says_so_in_the_queue_notice(pg_server: PgServer, tmp_path: Path) -> None:
    with two_processes(pg_server, tmp_path, 2.0) as (slack, letta, web1, web2):
        root, _ = web1.mention("root", CHANNEL)
        for n in range(10):
            assert web1.mention(f"q {n}", CHANNEL, thread_ts=root["ts"])[1].status_code == 200
        slack.wait_for(lambda: queued(slack, root["ts"]), 10)
        # Slack's load balancer hands the stop to the other process.
        assert web2.mention("stop", CHANNEL, thread_ts=root["ts"])[1].status_code == 200
        said = ("Queued", "Not answered")
        told = lambda: [m["text"] for m in slack.messages(CHANNEL, root["ts"]) if m["text"].startswith(said)]  # noqa: E731
        slack.wait_for(lambda: told() == ["Not answered: stopped before its turn came."], 20)
        assert len(letta.inputs) == 1  # nothing queued was asked: the stop worked


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_mention_delivered_to_the_other_process_is_told_it_is_queued(pg_server: PgServer, tmp_path: Path) -> None:
    with two_processes(pg_server, tmp_path, 20.0) as (slack, letta, web1, web2):
        web1.mention("holds the channel for 20 s", CHANNEL)  # web1 takes the channel's lease
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        waiting, _ = web2.mention("a question of its own", CHANNEL)  # Slack delivers it to web2
        slack.wait_for(lambda: queued(slack, waiting["ts"]), 10)
