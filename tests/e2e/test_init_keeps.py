"""`init --force` over a working config.toml (to rotate a token, say) keeps every setting init does not ask about.
Found by a review (revAW): they were dropped, a `database_url` pointing at the real database with them, so the next
`serve` opened a new, empty bridge.db beside the file: every channel binding seemed gone, and nothing said so."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_force_over_an_existing_config_keeps_or_names_the_settings_it_does_not_ask_about(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        env.pop("DATABASE_URL")
        (tmp_path / "data").mkdir()
        agent = letta.add_agent("alice")
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\nslack_api_url = "{slack.api_url}"\n'
            'database_url = "sqlite:///data/bridge.db"\nslack_configure_by = "everyone"\n'
        )
        config.chmod(0o600)
        bare = {k: v for k, v in env.items() if k not in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL",
                                                         "SLACK_API_URL")}
        assert run_cli(bare, "channels", "connect", "C0KEEP001", agent, cwd=tmp_path).returncode == 0
        assert (tmp_path / "data" / "bridge.db").exists()

        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)  # a token rotated, say
        assert done.returncode == 0, done.stderr

        written = tomllib.loads(config.read_text())
        said = done.stdout + done.stderr
        assert written["database_url"] == "sqlite:///data/bridge.db" and written["slack_configure_by"] == "everyone"
        assert written["slack_bot_token"] == env["SLACK_BOT_TOKEN"]  # what init asked about is the new answer
        assert "Kept what init does not ask about from the file it replaced: database_url, slack_configure_by" in said
        listed = run_cli(bare, "channels", "list", cwd=tmp_path)
        assert "C0KEEP001" in listed.stdout, (written, listed.stdout + listed.stderr)
