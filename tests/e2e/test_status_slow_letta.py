"""Found by review revDR: /letta status against a Letta that answers every request, each slowly (21 s, within
LETTA_LOOKUP_TIMEOUT's 30 s): status must still say the binding, as its probes are each bounded."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.harness import run_cli
from tests.e2e.slash import slash_world


def test_status_with_a_slow_letta_still_says_the_binding(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.8") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        group = sw.letta.add_group([a, b], manager_type="round_robin", description="Crew")
        channel = "C0SLOWSTA"
        made = run_cli(sw.env, "channels", "connect", channel, group)
        assert made.returncode == 0, made.stderr
        health = httpx.get(f"{sw.letta.base_url}/v1/health/").json()
        shape = httpx.get(f"{sw.letta.base_url}/v1/groups/{group}").json()
        sw.letta.fail_next("GET", r"/v1/health/?", 200, body=health, delay=21, times=3)
        sw.letta.fail_next("GET", rf"/v1/groups/{group}", 200, body=shape, delay=21, times=3)
        started = time.monotonic()
        answer = sw.send("status", channel)
        said = answer.wait(timeout=90)["text"]
        took = time.monotonic() - started
        paths = [r.path for r in sw.letta.requests][-6:]
        assert "This channel is connected to *Crew*" in said, (round(took), paths, said)
