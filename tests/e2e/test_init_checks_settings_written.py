"""init's check lines describe the settings the bridge will run with: the keys kept from the file it replaces
(letta_group_runner, letta_conversations) and the exported ones, as `check` right after reads them, not the
defaults."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_check_lines_describe_the_runner_and_conversations_kept_from_the_file(tmp_path: Path) -> None:
    """`init --force` over a file with letta_group_runner = "server" and letta_conversations = false keeps both and
    says so in its check lines, as `check` does."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        env.pop("LETTA_CONVERSATIONS")  # the operator's shell sets neither
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\nletta_group_runner = "server"\nletta_conversations = false\n'
        )
        config.chmod(0o600)
        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
        checked = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Kept what init does not ask about from the file it replaced: letta_group_runner, letta_conversations" \
        in done.stdout
    assert "warn runner: LETTA_GROUP_RUNNER=server on Letta 0.16.8" in done.stdout, done.stdout
    assert "LETTA_CONVERSATIONS=false: one context per agent" in done.stdout, done.stdout
    assert "LETTA_GROUP_RUNNER=auto" not in done.stdout and "each Slack thread is a Letta" not in done.stdout
    assert "warn runner: LETTA_GROUP_RUNNER=server on Letta 0.16.8" in checked.stdout, checked.stdout


def test_init_check_lines_describe_the_exported_runner_settings(tmp_path: Path) -> None:
    """LETTA_GROUP_RUNNER=server exported, with no file: init's runner line says server, as `check` will."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", LETTA_GROUP_RUNNER="server")
        done = run_cli(env, "init", "--non-interactive", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warn runner: LETTA_GROUP_RUNNER=server on Letta 0.16.8" in done.stdout, done.stdout
    assert "LETTA_CONVERSATIONS=false: one context per agent" in done.stdout, done.stdout  # base_env exports it
