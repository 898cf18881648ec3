"""`channels list` against a Letta that takes connections and never answers (config.example.toml: letta_lookup_timeout
bounds one-shot lookups, channels list among them): the managed groups' managers are looked up together, within one
LETTA_LOOKUP_TIMEOUT. Found by a review (revBC) of 0e7283f, which looked them up one binding after another, each
waiting LETTA_LOOKUP_TIMEOUT."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.e2e.test_lookup_timeout_probe import silent_letta  # noqa: F401  (fixture)
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_channels_list_with_a_hung_letta_is_bounded_not_one_timeout_per_group(
    silent_letta: str, tmp_path: Path  # noqa: F811
) -> None:
    db = tmp_path / "b.db"
    with FakeSlack() as slack:
        letta = FakeLetta(version="0.16.8")
        letta.start()
        try:
            env = base_env(slack.api_url, letta.base_url, db)
            for n in range(6):
                worker, boss = letta.add_agent(f"w{n}"), letta.add_agent(f"boss{n}")
                group = letta.add_group([worker], manager_type="supervisor", manager_agent_id=boss)
                done = run_cli(env, "channels", "connect", f"C0HUNG{n:03d}", group, "--runner", "bridge")
                assert done.returncode == 0, done.stdout + done.stderr
        finally:
            letta.stop()
        hung = base_env(slack.api_url, silent_letta, db, LETTA_LOOKUP_TIMEOUT="1", LETTA_CONNECT_TIMEOUT="20")
        started = time.monotonic()
        listed = run_cli(hung, "channels", "list", cwd=tmp_path)
        took = time.monotonic() - started
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "C0HUNG005" in listed.stdout, listed.stdout
    # The kind probe and one lookup: a few seconds at most, not one LETTA_LOOKUP_TIMEOUT per channel.
    assert took < 4, f"channels list took {took:.1f}s with LETTA_LOOKUP_TIMEOUT=1 and 6 channels"
