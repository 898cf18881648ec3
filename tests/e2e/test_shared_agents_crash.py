"""Agents shared by several channels, the bridge killed while one of them answers: the send of the dead process
is still running at Letta (a real server stores its message only when the step ends), so no other channel's turn
may ask that agent until it has ended; Letta would run both at once and mix their contexts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import backend_env, postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer


def _username_posts(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [p.args["username"] for p in slack.posts(channel, ts) if p.args.get("username")]


@pytest.mark.slow  # kill -9 mid-turn: .ci/run's slow stage
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_send_left_running_by_a_killed_process_is_waited_for_by_every_channel(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **backend_env(request, backend))
        for channel in ("C0SHARE01", "C0SHARE02"):
            assert run_cli(env, "channels", "connect", channel, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(alice, 4.0)
            first, _ = bridge.mention("first", "C0SHARE01")
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            bridge.kill()
            bridge.restart()
            second, _ = bridge.mention("second", "C0SHARE02")
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE02", second["ts"]) == ["alice"], 30)
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE01", first["ts"]) == ["alice"], 30)
            time.sleep(0.3)
            assert len(letta.inputs) == 2
            assert letta.overlaps == [], "alice was asked again while the killed process's send still ran"
        finally:
            bridge.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_live_process_waits_for_the_send_a_killed_one_left_running(pg_server: PgServer, tmp_path: Path) -> None:
    """Two processes on one database: the survivor had asked alice before (its own sends to her all ended), then
    the other dies while alice answers it. Once the dead process's heartbeat has run out its record of the send
    is taken over, and the survivor still waits for the run at Letta before asking alice."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                       **postgres_env(pg_server.create_database()))
        for channel in ("C0SHARE01", "C0SHARE02"):
            assert run_cli(env, "channels", "connect", channel, alice).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        try:
            warm, _ = web2.mention("warm", "C0SHARE02")
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE02", warm["ts"]) == ["alice"], 20)
            letta.set_delay(alice, 6.0)  # longer than the dead process's heartbeat lasts (TURN_LEASE_SECONDS=2)
            first, _ = web1.mention("first", "C0SHARE01")
            letta.wait_for(lambda: len(letta.inputs) == 2, 10)
            web1.kill()
            second, _ = web2.mention("second", "C0SHARE02")
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE02", second["ts"]) == ["alice"], 40)
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE01", first["ts"]) == ["alice"], 40)
            time.sleep(0.3)
            assert len(letta.inputs) == 3
            assert letta.overlaps == [], "alice was asked again while the killed process's send still ran"
        finally:
            web1.stop()
            web2.stop()


@pytest.mark.slow  # several processes, one stopped mid-send
@pytest.mark.timeout(120)
def test_a_live_process_waits_for_the_send_another_left_running_when_its_grace_ran_out(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """Two processes on one database: one is stopped (SIGTERM) while alice answers it, and its grace runs out
    before her run does, which Letta goes on with. The survivor, started after a clean start (nothing left going
    then, so its first sends look at no runs), must still not ask alice until that run has ended: the stopped
    process's record of the send tells it so."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db",
                       SHUTDOWN_GRACE_SECONDS="0.5", **postgres_env(pg_server.create_database()))
        for channel in ("C0SHARE01", "C0SHARE02"):
            assert run_cli(env, "channels", "connect", channel, alice).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        try:
            letta.set_delay(alice, 5.0)
            first, _ = web1.mention("first", "C0SHARE01")
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            assert web1.stop() == 0  # SIGTERM: the grace (0.5 s) runs out mid-send
            second, _ = web2.mention("second", "C0SHARE02")
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE02", second["ts"]) == ["alice"], 40)
            slack.wait_for(lambda: _username_posts(slack, "C0SHARE01", first["ts"]) == ["alice"], 40)
            time.sleep(0.3)
            assert len(letta.inputs) == 2
            assert letta.overlaps == [], "alice was asked again while the stopped process's send still ran"
        finally:
            web1.stop()
            web2.stop()
