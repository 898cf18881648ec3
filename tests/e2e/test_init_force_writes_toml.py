"""revBT: `init --force` keeps what init does not ask about, and must write back a config.toml that tomllib reads as
the one it replaced. A value or table key holding U+007F (written `\\u007f` in the file, which TOML allows) is written
raw by json.dumps, which TOML forbids; a top-level key that TOML needs quoted is written bare. Either way the next
`serve` meets a file that is no TOML at all."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bridge.config import Settings
from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@pytest.mark.parametrize(
    "extra",
    [
        '[slack_agents.alice]\ndisplay_name = "Alice\\u007f"\n',  # a value with DEL, escaped as TOML allows
        '[slack_agents."al\\u007fice"]\ndisplay_name = "Alice"\n',  # a table key with DEL
        '"café" = "x"\n',  # a top-level key TOML needs quoted
    ],
)
def test_init_force_writes_back_readable_toml(tmp_path: Path, extra: str) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\n' + extra,
            encoding="utf-8",
        )
        config.chmod(0o600)
        before = tomllib.loads(config.read_text(encoding="utf-8"))
        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        text = config.read_text(encoding="utf-8")
        written = tomllib.loads(text)  # tomllib.TOMLDecodeError: Illegal character '\x7f' / Invalid statement
        asked = {"slack_bot_token", "slack_signing_secret", "letta_base_url"}
        unknown = {k for k in before if k.lower() not in Settings.model_fields}  # serve refuses them: left out, named
        kept = {k: v for k, v in before.items() if k not in asked | unknown}
        assert {k: written.get(k) for k in kept} == kept
        assert not unknown & set(written) and all(k in done.stdout for k in unknown), done.stdout
