"""`serve` started as a user starts it: on a fresh database, and again after a clean stop (SIGTERM), nothing an
earlier process sent can still be running at Letta, so no turn's first send waits on a look at its agents' runs
(a burst of new turns after every deploy would pay one request per agent). After a kill mid-send the look is made
(tests/e2e/test_shared_agents_crash.py shows it keeps the agent from being asked twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import backend_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def _looks(letta: FakeLetta, agent_id: str | None = None) -> int:
    """Requests listing runs (of `agent_id`'s alone when given)."""
    return len([
        r for r in letta.requests
        if r.method == "GET" and r.path.startswith("/v1/runs") and agent_id in (None, r.query.get("agent_id"))
    ])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_first_send_waits_on_a_look_after_a_clean_stop_but_one_does_after_a_kill(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **backend_env(request, backend))
        for channel, agent in (("C0EARLY01", alice), ("C0EARLY02", bob), ("C0EARLY03", alice)):
            assert run_cli(env, "channels", "connect", channel, agent).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            first, _ = bridge.mention("first", "C0EARLY01")
            slack.wait_for(lambda: len(slack.posts("C0EARLY01", first["ts"])) == 1, 20)
            assert bridge.restart().proc is not None  # SIGTERM: a clean stop
            second, _ = bridge.mention("second", "C0EARLY02")
            slack.wait_for(lambda: len(slack.posts("C0EARLY02", second["ts"])) == 1, 20)
            assert len(letta.sends()) == 2
            assert _looks(letta) == 0, "a first send looked at its agent's runs though nothing could be going"

            letta.set_delay(alice, 2.0)
            bridge.mention("third", "C0EARLY03")
            letta.wait_for(lambda: len(letta.sends()) == 3, 10)
            bridge.kill()
            bridge.restart()
            fourth, _ = bridge.mention("fourth", "C0EARLY02")
            slack.wait_for(lambda: len(slack.posts("C0EARLY02", fourth["ts"])) == 1, 20)
            assert _looks(letta, bob) >= 1, "after a kill mid-send, bob's first send did not look at his runs"
        finally:
            bridge.stop()
