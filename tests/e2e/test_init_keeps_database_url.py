"""`init --force` keeps the config file's DATABASE_URL even when a certificate file it names is not on this machine:
the file may be only where the bridge runs (a CA bundle on the server), and a dropped database_url made that serve
open the default SQLite file, an empty store with every binding gone (second reader secLC). `serve` and `check`,
where the bridge runs, still refuse a missing file (tests/unit/test_database_ssl_file_named.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_force_keeps_a_postgres_url_whose_certificate_is_on_the_server_only(tmp_path: Path) -> None:
    url = "postgres://u:p@db.example.org:5432/bridge?sslmode=verify-full&sslrootcert=/etc/ssl/no-such-ca.pem"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        env.pop("DATABASE_URL")
        config = tmp_path / "config.toml"
        config.write_text(
            f'slack_bot_token = "{BOT_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
            f'letta_base_url = "{letta.base_url}"\ndatabase_url = "{url}"\n'
        )
        config.chmod(0o600)
        done = run_cli(
            env, "init", "--non-interactive", "--force", "--public-url", "https://bridge.example.org", cwd=tmp_path
        )
        assert tomllib.loads(config.read_text()).get("database_url") == url, done.stdout + done.stderr
