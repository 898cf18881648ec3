"""Set up for Socket Mode (SLACK_APP_TOKEN exported as README's Socket Mode section says, no public URL), `init`
ends with `python -m bridge socket`, not `serve` (a server on a port Slack never reaches), and says the token
must stay set, as init does not write it."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import bare_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_for_socket_mode_ends_with_the_socket_command(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   SLACK_APP_TOKEN="xapp-1-A0123-456-abcdef")
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    start = done.stdout[done.stdout.index("Start the bridge"):]
    assert "-m bridge socket" in start, start
    assert "Keep SLACK_APP_TOKEN set in the environment there: init does not write it" in start, start
    assert "slack_app_token" not in (tmp_path / "config.toml").read_text()


def test_init_with_a_public_url_ends_with_serve_even_with_an_app_token(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   SLACK_APP_TOKEN="xapp-1-A0123-456-abcdef")
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url,
                       "--public-url", "https://bridge.acme.test", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    start = done.stdout[done.stdout.index("Start the bridge"):]
    assert "-m bridge serve" in start and "SLACK_APP_TOKEN" not in start, start
