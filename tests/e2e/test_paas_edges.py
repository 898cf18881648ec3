"""A PaaS deployment's edges (revAB): a database that refuses writes is not ready; a turn a restart cut on a Letta
release between the captured ones is answered after it."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import httpx

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

_roles = itertools.count(1)


def test_readyz_is_503_while_the_database_refuses_the_bridge_writes(pg_server: PgServer, tmp_path: Path) -> None:
    """Heroku takes INSERT and UPDATE away from a database over its plan's storage: every mention then failed
    (500) while /readyz, which docs/paas.md says is 503 "while the database cannot record a turn", said 200."""
    role = f"revab_{os.getpid()}_{next(_roles)}"
    pg_server.psql(f"CREATE ROLE {role} LOGIN")
    pg_server.psql(f"CREATE DATABASE {role} OWNER {role}")
    url = f"postgresql://{role}@127.0.0.1:{pg_server.port}/{role}"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        slack.add_channel("C0REVAB02", "quota")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", DATABASE_URL=url)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            assert run_cli(env, "channels", "connect", "C0REVAB02", alice).returncode == 0
            assert httpx.get(f"{bridge.url}/readyz", timeout=5).status_code == 200
            pg_server.psql(f"REVOKE INSERT, UPDATE ON ALL TABLES IN SCHEMA public FROM {role}", database=role)
            _, answered = bridge.mention("hello", "C0REVAB02")
            assert answered.status_code == 500
            assert httpx.get(f"{bridge.url}/readyz", timeout=5).status_code == 503
            assert "refuses the bridge's user the right to write its tables" in bridge.logs()  # the reason, logged
        finally:
            bridge.stop()


def test_a_turn_a_restart_cut_on_letta_0_12_is_answered_after_it(tmp_path: Path) -> None:
    """Which run-list route 0.12 has is captured for neither neighbour: the bridge asked /v1/runs/ and the fake
    0.12.1 has only /v1/runs/active, so a turn resumed after a restart ended in "no route for that request"
    instead of its agent's answer. A missing route now sends the bridge to the other one."""
    with FakeSlack() as slack, FakeLetta(version="0.12.1") as letta:
        alice = letta.add_agent("alice")
        slack.add_channel("C0REVAB01", "restart")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", SHUTDOWN_GRACE_SECONDS="0.5")
        assert run_cli(env, "channels", "connect", "C0REVAB01", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "one.log")
        try:
            letta.set_delay(alice, 4.0)
            event, _ = bridge.mention("hello", "C0REVAB01")
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            assert bridge.stop() == 0
            bridge.start(tmp_path / "two.log")
            slack.wait_for(lambda: len(slack.posts("C0REVAB01", event["ts"])) >= 1, 30)
            time.sleep(1)
            posts = slack.posts("C0REVAB01", event["ts"])
            assert [p.args.get("username") for p in posts] == ["alice"], [p.args.get("text") for p in posts]
            assert len(letta.inputs) == 1, "the agent was asked twice"
        finally:
            bridge.stop()
