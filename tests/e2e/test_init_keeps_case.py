"""`init --force` over a config.toml whose keys are written as the environment variables' names (SLACK_BOT_TOKEN = ...,
which Settings reads: case_sensitive=False) writes one value per setting. Found by a review (revBB) of 42d8670, which
kept the old secrets beside the new ones (and an old LETTA_API_KEY where init was told there is none)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

LETTA_KEY = "letta-key-for-init-42"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeLetta]]:
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key=LETTA_KEY) as letta:
        yield slack, letta


def test_init_force_over_upper_case_keys_writes_one_value_per_setting(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    slack, letta = fakes
    config = tmp_path / "config.toml"
    config.write_text(
        'SLACK_BOT_TOKEN = "xoxb-old-revoked-token"\n'
        f'SLACK_SIGNING_SECRET = "{"0" * 32}"\n'
        'LETTA_BASE_URL = "http://old-letta.invalid:8283"\n'
        f'DATABASE_URL = "sqlite:///{tmp_path}/bridge.db"\n'
    )
    env = base_env(slack.api_url, "http://unused", tmp_path / "unused.db")
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL", "DATABASE_URL"):
        env.pop(name)
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, LETTA_API_KEY=LETTA_KEY)
    done = run_cli(env, "init", "--non-interactive", "--force", "--slack-signing-secret", SIGNING_SECRET,
                   "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = config.read_text()
    print(written)
    keys = [k.lower() for k in tomllib.loads(written)]
    assert len(keys) == len(set(keys)), f"a setting written twice: {sorted(keys)}\n{written}"


def test_init_force_for_a_keyless_letta_does_not_keep_the_old_upper_case_key(tmp_path: Path) -> None:
    """An operator moves to a local Letta with no key: init asked, was told none, and said nothing of the old key;
    the next `serve` still sends the old server's key to the new one."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        config = tmp_path / "config.toml"
        config.write_text(
            'SLACK_BOT_TOKEN = "xoxb-old"\n'
            'LETTA_BASE_URL = "https://api.letta.com"\n'
            'LETTA_API_KEY = "sk-let-old-cloud-key"\n'
        )
        env = base_env(slack.api_url, "http://unused", tmp_path / "unused.db")
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL", "DATABASE_URL"):
            env.pop(name)
        env.update(SLACK_BOT_TOKEN=BOT_TOKEN)
        done = run_cli(env, "init", "--non-interactive", "--force", "--slack-signing-secret", SIGNING_SECRET,
                       "--letta-base-url", letta.base_url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        probe = "from bridge.config import Settings; s = Settings(); print(s.letta_api_key)"
        clean = {k: v for k, v in env.items() if not k.startswith(("SLACK_", "LETTA_", "DATABASE_"))}
        seen = subprocess.run([sys.executable, "-c", probe], env=clean, cwd=tmp_path, capture_output=True, text=True)
        assert seen.stdout.strip() == "None", (seen.stdout + seen.stderr, config.read_text())

