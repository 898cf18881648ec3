"""What an operator running `serve` on a PaaS sees (a real SQLite file, settings from the environment): turn
outcomes in /metrics that an alert can be written on, and /metrics kept off the public side of a proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0VIEW0001"


def outcomes(bridge: BridgeProcess) -> dict[str, float]:
    """bridge_turns_total by outcome (the page scraped from loopback, as a sidecar would)."""
    page = httpx.get(f"{bridge.url}/metrics", timeout=5)
    assert page.status_code == 200, page.text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if sample.name == "bridge_turns_total"
    }


def test_a_turn_no_agent_answered_is_counted_failed_not_partial(fresh: tuple[FakeSlack, FakeLetta, Path]) -> None:
    """Letta failing every send must move bridge_turns_total{outcome="failed"}: an alert on it is how an operator
    learns that nobody is being answered. `partial` is for a turn some agent answered and another did not."""
    slack, letta, tmp = fresh
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    assert run_cli(env, "channels", "connect", "C0VIEW0002", alice, bob).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        letta.fail_next("POST", r".*/messages.*", 500)
        lost, _ = bridge.mention("anyone there?", CHANNEL)
        slack.wait_for(lambda: "warning" in slack.reactions(CHANNEL, lost["ts"]), 15)
        letta.fail_next("POST", r".*/messages.*", 500)  # alice fails, bob answers
        half, _ = bridge.mention("and now?", "C0VIEW0002")
        slack.wait_for(lambda: "warning" in slack.reactions("C0VIEW0002", half["ts"]), 15)
        assert outcomes(bridge) == {"failed": 1.0, "partial": 1.0}
        ended = [line for line in bridge.logs().splitlines() if "turn ended" in line]
        assert [("status=failed" in line, "status=partial" in line) for line in ended] == [(True, False), (False, True)]
    finally:
        assert bridge.stop() == 0
