"""`init --public-url` with no host (or a space in it) is refused in one sentence, not printed into the manifest
(`request_url: https:/slack/events`) that Slack then refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import LETTA_KEY, bare_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeLetta]]:
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key=LETTA_KEY) as letta:
        yield slack, letta


@pytest.mark.parametrize(
    ("url", "why"), [("https://", "has no host"), ("https://bridge acme.test", "a space in its host")]
)
def test_init_refuses_a_public_url_with_no_usable_host(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path, url: str, why: str
) -> None:
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=LETTA_KEY)
    done = run_cli(env, "init", "--non-interactive", "--public-url", url, "--letta-base-url", letta.base_url,
                   cwd=tmp_path)
    assert "request_url: https:/slack/events" not in done.stdout
    assert done.returncode == 1, done.stdout[-600:]
    assert any(line.startswith("FAIL public URL") and why in line for line in done.stdout.splitlines()), done.stdout
    assert not (tmp_path / "config.toml").exists()
