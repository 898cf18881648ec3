"""`init --force` over a config.toml that renames the slash command (slack_command, which init keeps, as it does
not ask about it) prints the manifest and its closing line with that command, as config.example.toml says (init fills
in SLACK_COMMAND's, else the kept key's)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_prints_the_manifest_with_the_command_the_kept_file_answers(tmp_path: Path) -> None:
    """The manifest printed named /letta: the app made from it sent /letta, which the bridge started from the file
    (answering /agents) never answered, and the closing line told to type `/letta connect`."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        env.pop("SLACK_COMMAND", None)
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\nslack_command = "/agents"\n'
        )
        config.chmod(0o600)
        done = run_cli(env, "init", "--non-interactive", "--force", "--public-url", "https://bridge.example.org",
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert tomllib.loads(config.read_text())["slack_command"] == "/agents"  # what serve will answer
        assert "command: /agents" in done.stdout, done.stdout
        assert "command: /letta" not in done.stdout
        assert "type `/agents connect`" in done.stdout
