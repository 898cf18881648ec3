"""Which SQLite file the bridge uses: `check` creates nothing and names it; a relative path (the default
`bridge.db` too) is taken from the config file's folder, so starting elsewhere never opens an empty store."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import REPO, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_check_with_no_settings_creates_nothing(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "https://api.letta.com", tmp_path / "unused.db")
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"):
        del env[name]
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2
    assert list(tmp_path.iterdir()) == [], "check created something"
    [line] = [line for line in done.stdout.splitlines() if " database:" in line]
    assert line.startswith("warn database:") and f"{tmp_path / 'bridge.db'} does not exist yet" in line


def test_the_default_database_lives_beside_the_config_file_whatever_the_folder(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "bridge-home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        del env["DATABASE_URL"]
        (home / "config.toml").write_text('log_level = "INFO"\n')
        alice = letta.add_agent("alice")
        connected = run_cli(env, "channels", "connect", "C0123ABC", alice, cwd=home)
        assert connected.returncode == 0, connected.stderr
        assert str(home / "bridge.db") in connected.stdout
        assert (home / "bridge.db").is_file()

        from_elsewhere = dict(env, BRIDGE_CONFIG=str(home / "config.toml"))
        listing = run_cli(from_elsewhere, "channels", "list", cwd=elsewhere)
        assert "C0123ABC" in listing.stdout and str(home / "bridge.db") in listing.stdout, listing.stdout
        checked = run_cli(from_elsewhere, "check", cwd=elsewhere)
        assert f"ok   database: SQLite file {home / 'bridge.db'} (schema v4, 1 channel bindings" in checked.stdout
        bridge = BridgeProcess(from_elsewhere, cwd=elsewhere).start(tmp_path / "bridge.log")
        try:
            assert f"database={home / 'bridge.db'}" in bridge.logs()
        finally:
            bridge.stop()
        assert list(elsewhere.iterdir()) == [], "a second, empty store was opened"


def test_without_a_config_file_the_current_folder_holds_it_and_list_creates_nothing(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    del env["DATABASE_URL"]
    listing = run_cli(env, "channels", "list", cwd=tmp_path)
    assert listing.returncode == 0
    assert f"{tmp_path / 'bridge.db'} does not exist yet" in listing.stdout
    assert list(tmp_path.iterdir()) == []
    assert REPO != tmp_path
