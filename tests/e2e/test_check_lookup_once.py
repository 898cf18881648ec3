"""A Letta that takes the connection and never answers costs `check` (and `init`'s URL check) one
LETTA_LOOKUP_TIMEOUT, as config.example.toml and docs/app-server.md say, not one per request asked: one request
is made and waited for, not a second after it (counted, not timed: the machine's load would make a time flaky)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

LOOKUP = 4.0


def test_check_on_a_letta_that_never_answers_waits_one_lookup_timeout(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_LOOKUP_TIMEOUT=str(LOOKUP))
        letta.hang_next("*", r".*", times=10)  # a firewall that drops after the handshake: nothing ever answers
        done = run_cli(env, "check")
        assert done.returncode == 1 and "did not answer the health check in time" in done.stdout, done.stdout
        asked = [r.path for r in letta.requests]
        assert len(asked) == 1, f"check waited on each of {asked}"


def test_init_on_a_letta_url_that_never_answers_waits_one_lookup_timeout(tmp_path: Path) -> None:
    """init takes LETTA_LOOKUP_TIMEOUT from the environment, as check does, and says what it waits for."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", LETTA_LOOKUP_TIMEOUT=str(LOOKUP))
        env.pop("DATABASE_URL")
        letta.hang_next("*", r".*", times=10)
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "init", "--non-interactive", "--config", str(tmp_path / "config.toml")],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1 and "did not answer the health check in time" in done.stdout, done.stdout
        # said before the wait, with the wait LETTA_LOOKUP_TIMEOUT sets (not the default 30 s)
        assert f"waiting up to {LOOKUP:g} s for an answer" in done.stdout, done.stdout
        asked = [r.path for r in letta.requests]
        assert len(asked) == 1, f"init waited on each of {asked}"
