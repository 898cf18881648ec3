"""`init --force` over a Socket Mode config.toml that holds slack_app_token (requirements.py's advice:
`slack_app_token = "xapp-…"` in config.toml): init keeps the token from the file it replaces, so the bridge is
still set up for Socket Mode, and its last line should start it with `socket`, not `serve`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import bare_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_force_over_a_socket_mode_file_ends_with_the_socket_command(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('slack_app_token = "xapp-1-A0123-456-abcdef"\n')
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        env.pop("SLACK_APP_TOKEN", None)
        done = run_cli(env, "init", "--non-interactive", "--force", "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "slack_app_token" in (tmp_path / "config.toml").read_text()  # kept from the file it replaced
    start = done.stdout[done.stdout.index("Start the bridge"):]
    assert "-m bridge socket" in start, done.stdout[-1200:]
    assert "Keep SLACK_APP_TOKEN set in the environment" not in start, start  # the file holds it
    assert "slack_app_token, kept from the file replaced" in start, start
