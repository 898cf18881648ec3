"""Events acknowledged before the bridge had Slack's answer to its first auth.test (a burst at start, or what a
killed process left in the inbox) become turns in the order Slack delivered them (revP). Before, each asked
auth.test itself, and those that came after the first answer overtook those still waiting for theirs: the agent
was asked 0, 6, 1, 7, 2, 8, …, and 100 events left in the inbox made 103 auth.test calls."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, leave_in_inbox, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

CHANNEL = "C0ORDER01"


@contextmanager
def bound(
    tmp_path: Path, left: int = 0, **settings: str
) -> Iterator[tuple[FakeSlack, FakeLetta, Path, dict[str, str]]]:
    """Fakes, a channel bound to alice, and `left` mentions a killed process left in the inbox, in Slack's order."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        db = tmp_path / "bridge.db"
        env = base_env(slack.api_url, letta.base_url, db, **settings)
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, letta.add_agent("alice")).returncode == 0
        for n in range(left):
            leave_in_inbox(db, f"question m{n:04d}", CHANNEL)
        yield slack, letta, tmp_path / "bridge.log", env


def asked(letta: FakeLetta, count: int) -> list[int]:
    """The numbers of the first `count` questions, in the order the agent was asked them."""
    letta.wait_for(lambda: len(letta.inputs) == count, 60)
    return [int(re.findall(r"m(\d{4})", i.text)[-1]) for i in letta.inputs]


def burst(slack: FakeSlack, letta: FakeLetta, log: Path, env: dict[str, str]) -> list[int]:
    """30 mentions just after start, each acknowledged (200) before the next is sent, while Slack's auth.test
    takes 300 ms (as it may)."""
    bridge = BridgeProcess(env).start(log)
    slack.answer_delays["auth.test"] = 0.3
    try:
        for n in range(30):
            assert bridge.mention(f"question m{n:04d}", CHANNEL)[1].status_code == 200
            time.sleep(0.02)
        return asked(letta, 30)
    finally:
        bridge.stop()


def test_events_left_in_the_inbox_run_in_the_order_they_were_acknowledged(tmp_path: Path) -> None:
    with bound(tmp_path, left=40) as (_slack, letta, log, env):
        bridge = BridgeProcess(env).start(log)
        try:
            order = asked(letta, 40)
            assert order == sorted(order), f"asked out of order: {order}"
        finally:
            bridge.stop()


@pytest.mark.parametrize("ingress", ["thread", "process"])
def test_a_burst_just_after_start_runs_in_the_order_it_was_acknowledged(tmp_path: Path, ingress: str) -> None:
    with bound(tmp_path, HTTP_INGRESS=ingress) as (slack, letta, log, env):
        order = burst(slack, letta, log, env)
    assert order == sorted(order), f"asked out of order: {order}"


def test_a_burst_just_after_start_runs_in_order_on_postgres(tmp_path: Path, pg_server: PgServer) -> None:
    with bound(tmp_path, **postgres_env(pg_server.create_database())) as (slack, letta, log, env):
        order = burst(slack, letta, log, env)
    assert order == sorted(order), f"asked out of order: {order}"


def test_events_left_in_the_inbox_ask_slack_auth_test_once(tmp_path: Path) -> None:
    with bound(tmp_path, left=100) as (slack, letta, log, env):
        slack.answer_delays["auth.test"] = 0.3
        bridge = BridgeProcess(env).start(log)
        try:
            asked(letta, 100)
            calls = len(slack.calls_to("auth.test"))  # serve's own at start, the one the events wait for, …
            assert calls <= 5, f"{calls} auth.test calls for 100 events handed over at start"  # 103 before
        finally:
            bridge.stop()


def test_events_left_in_the_inbox_survive_a_rate_limited_auth_test(tmp_path: Path) -> None:
    """Slack rate-limits auth.test as the events are handed over, past the client's own three retries: the events
    waiting for that answer fail their first attempt and are made again, none lost. (Their order is kept among
    those that failed together; one handed over after the failure may go first: docs/guarantees.md.)"""
    with bound(tmp_path, left=60) as (slack, letta, log, env):
        slack.fail_next("auth.test", "ratelimited", status=429, headers={"retry-after": "1"}, times=8)
        bridge = BridgeProcess(env).start(log)
        try:
            assert sorted(asked(letta, 60)) == list(range(60))
        finally:
            bridge.stop()
