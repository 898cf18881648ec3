"""revBS, README (step 2): `init` over an existing config.toml overwrites it "keeping the settings init does not ask
about". config.example.toml documents slack_agents as a table ([slack_agents.alice]); `init --force` (a token
rotated, say) dropped it: every agent's display name and icon are gone from Slack after the next start."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_force_keeps_the_agents_looks_table(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\nslack_configure_by = "everyone"\n\n'
            '[slack_agents.alice]\ndisplay_name = "Alice (research)"\nicon_emoji = ":owl:"\n'
        )
        config.chmod(0o600)
        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        written = tomllib.loads(config.read_text())
        assert written["slack_configure_by"] == "everyone"
        assert written.get("slack_agents") == {"alice": {"display_name": "Alice (research)", "icon_emoji": ":owl:"}}, (
            done.stdout
        )
