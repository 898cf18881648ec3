"""PostgreSQL out of connections for a moment (a small plan's limit reached by a one-off `heroku run` or a psql
session) while a turn takes its agents' lock: the turn was failed as "an unexpected error", with nothing sent to
Letta, and never run again. A database's trouble now goes to the turn's runs, which make it again once the
database answers (found by a review helper)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

CHANNEL = "C0PGLIMIT1"


@pytest.mark.slow  # a PostgreSQL role's connection limit lowered and raised around a bridge: .ci/run's slow stage
def test_a_turn_that_meets_the_connection_limit_runs_once_connections_are_free(
    pg_server: PgServer, tmp_path: Path
) -> None:
    role = f"app{os.getpid()}"
    pg_server.psql(f"CREATE ROLE {role} LOGIN")
    pg_server.psql(f"CREATE DATABASE {role} OWNER {role}")
    url = f"postgresql://{role}@127.0.0.1:{pg_server.port}/{role}"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        slack.add_channel(CHANNEL, "limit")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", DATABASE_URL=url)
        assert run_cli(env, "channels", "connect", CHANNEL, letta.add_group([alice, bob])).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            time.sleep(2)  # the pools' first connections made: the agent locks' pool opens on demand
            open_now = pg_server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'")
            pg_server.psql(f"ALTER ROLE {role} CONNECTION LIMIT {int(open_now)}")
            event, answered = bridge.mention("hello", CHANNEL)
            assert answered.status_code == 200
            time.sleep(3)
            pg_server.psql(f"ALTER ROLE {role} CONNECTION LIMIT -1")
            names = lambda: [p.args.get("username") for p in slack.posts(CHANNEL, event["ts"])]  # noqa: E731
            slack.wait_for(lambda: names() == ["alice", "bob"], 30)
            texts = [p.args.get("text") or "" for p in slack.posts(CHANNEL, event["ts"])]
            assert not any("unexpected error" in t for t in texts), texts
            assert len(letta.sends()) == 2, "an agent was asked twice"
        finally:
            bridge.stop()
