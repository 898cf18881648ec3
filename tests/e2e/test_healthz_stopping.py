"""GET /healthz and /readyz while `serve` drains after SIGTERM: a load balancer holding a kept-alive connection is
told the process is stopping (503), not that it is starting, and not that it is fine."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0DRAIN01"


def test_healthz_says_stopping_while_turns_in_flight_finish(fresh: tuple[FakeSlack, FakeLetta, Path]) -> None:
    slack, letta, tmp = fresh
    agent = letta.add_agent("alice")
    letta.set_delay(agent, 3.0)  # the turn in flight when SIGTERM comes
    # The main app serves HOST:PORT itself (no ingress thread), as on Postgres.
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX="false")
    assert run_cli(env, "channels", "connect", CHANNEL, agent).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        with httpx.Client(base_url=bridge.url, timeout=5) as balancer:  # one kept-alive connection
            started = balancer.get("/healthz")
            assert (started.status_code, started.json()["status"]) == (200, "ok")
            _, answer = bridge.mention("a slow question", CHANNEL)
            assert answer.status_code == 200
            letta.wait_for(lambda: any(i.finished is None for i in letta.inputs), 10)
            assert bridge.proc is not None
            bridge.proc.terminate()
            seen: list[tuple[int, str]] = []
            ready: list[int] = []
            while bridge.proc.poll() is None:
                try:
                    health = balancer.get("/healthz")
                    ready.append(balancer.get("/readyz").status_code)
                except httpx.HTTPError:
                    break  # the connection closed as the process ends
                seen.append((health.status_code, health.json()["status"]))
                time.sleep(0.05)
        assert bridge.proc.wait(30) == 0, bridge.logs()
        draining = [s for s in seen if s != (200, "ok")]  # the first answers may precede the signal's handling
        assert draining, f"no answer while draining: {seen}\n{bridge.logs()}"
        assert set(draining) == {(503, "stopping")}, seen
        assert seen[seen.index(draining[0]):] == draining, f"healthy again after stopping began: {seen}"
        assert ready[-len(draining):] == [503] * len(draining), ready
        assert [p.args.get("username") for p in slack.posts(CHANNEL) if p.args.get("username")] == ["alice"], (
            "the turn in flight did not finish"
        )
    finally:
        bridge.stop()
