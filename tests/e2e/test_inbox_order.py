"""Events acknowledged before the bridge had Slack's answer to its first auth.test (a burst at start, or what a
killed process left in the inbox) become turns in the order Slack delivered them (revP). Before, each asked
auth.test itself, and those that came after the first answer overtook those still waiting for theirs: the agent
was asked 0, 6, 1, 7, 2, 8, …, and 100 events left in the inbox made 103 auth.test calls."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, leave_in_inbox, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

CHANNEL = "C0ORDER01"


def test_events_left_in_the_inbox_run_in_the_order_they_were_acknowledged(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        db = tmp_path / "bridge.db"
        env = base_env(slack.api_url, letta.base_url, db)
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        # What a process killed right after acknowledging a burst leaves behind: 40 mentions, in Slack's order.
        for n in range(40):
            leave_in_inbox(db, f"question m{n:04d}", CHANNEL)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.wait_for(lambda: len(letta.inputs) == 40, 60)
            order = [int(re.findall(r"m(\d{4})", i.text)[-1]) for i in letta.inputs]
            assert order == sorted(order), f"asked out of order: {order}"
        finally:
            bridge.stop()


@pytest.mark.parametrize("ingress", ["thread", "process"])
def test_a_burst_just_after_start_runs_in_the_order_it_was_acknowledged(tmp_path: Path, ingress: str) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", HTTP_INGRESS=ingress)
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        slack.answer_delays["auth.test"] = 0.3  # Slack's auth.test takes 300 ms, as it may
        try:
            for n in range(30):  # one after the other: each acknowledged (200) before the next is sent
                _, response = bridge.mention(f"question m{n:04d}", CHANNEL)
                assert response.status_code == 200
                time.sleep(0.02)
            letta.wait_for(lambda: len(letta.inputs) == 30, 60)
            order = [int(re.findall(r"m(\d{4})", i.text)[-1]) for i in letta.inputs]
            assert order == sorted(order), f"asked out of order: {order}"
        finally:
            bridge.stop()


def test_events_left_in_the_inbox_ask_slack_auth_test_once(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        db = tmp_path / "bridge.db"
        env = base_env(slack.api_url, letta.base_url, db)
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        for n in range(100):
            leave_in_inbox(db, f"question m{n:04d}", CHANNEL)
        slack.answer_delays["auth.test"] = 0.3
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.wait_for(lambda: len(letta.inputs) == 100, 60)
            calls = len(slack.calls_to("auth.test"))  # serve's own at start, the one the events wait for, …
            assert calls <= 5, f"{calls} auth.test calls for 100 events handed over at start"  # 103 before
        finally:
            bridge.stop()


def test_events_left_in_the_inbox_survive_a_rate_limited_auth_test(tmp_path: Path) -> None:
    """Slack rate-limits auth.test as the events are handed over, past the client's own three retries: the events
    waiting for that answer fail their first attempt and are made again, none lost. (Their order is kept among
    those that failed together; one handed over after the failure may go first: docs/guarantees.md.)"""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        db = tmp_path / "bridge.db"
        env = base_env(slack.api_url, letta.base_url, db)
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        for n in range(60):
            leave_in_inbox(db, f"question m{n:04d}", CHANNEL)
        slack.fail_next("auth.test", "ratelimited", status=429, headers={"retry-after": "1"}, times=8)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.wait_for(lambda: len(letta.inputs) == 60, 60)
            asked = sorted(int(re.findall(r"m(\d{4})", i.text)[-1]) for i in letta.inputs)
            assert asked == list(range(60))
        finally:
            bridge.stop()


def test_a_burst_just_after_start_runs_in_order_on_postgres(tmp_path: Path, pg_server: PgServer) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "x.db", **postgres_env(pg_server.create_database()))
        alice = letta.add_agent("alice")
        slack.add_channel(CHANNEL, "order")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        slack.answer_delays["auth.test"] = 0.3
        try:
            for n in range(30):
                _, response = bridge.mention(f"question m{n:04d}", CHANNEL)
                assert response.status_code == 200
                time.sleep(0.02)
            letta.wait_for(lambda: len(letta.inputs) == 30, 60)
            order = [int(re.findall(r"m(\d{4})", i.text)[-1]) for i in letta.inputs]
            assert order == sorted(order), f"asked out of order: {order}"
        finally:
            bridge.stop()
