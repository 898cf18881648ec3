"""Which SQLite file the bridge uses: `check` creates nothing and names it; a relative path (the default
`bridge.db` too) is taken from the config file's folder, so starting elsewhere never opens an empty store."""

from __future__ import annotations

from pathlib import Path

from bridge.store.schema import SQLITE_MIGRATIONS
from tests.e2e.harness import REPO, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

LATEST = len(SQLITE_MIGRATIONS)  # the schema version a fresh database reaches


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
        db_line = f"ok   database: SQLite file {home / 'bridge.db'} (schema v{LATEST}, 1 channel binding:"
        assert db_line in checked.stdout
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


def test_a_database_url_naming_a_file_that_is_not_a_database_leaves_it_as_it_was(tmp_path: Path) -> None:
    """A DATABASE_URL mistyped onto another file (a config, /etc/passwd): every command says it is not a database
    and changes nothing of it, its mode included (the bridge tightens only its own database files to 600)."""
    other = tmp_path / "accounts"
    other.write_text("root:x:0:0:root:/root:/bin/bash\n")
    other.chmod(0o644)
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = f"sqlite:///{other}"
    for command in (("check",), ("channels", "list"), ("serve",)):
        done = run_cli(env, *command, cwd=tmp_path)
        assert done.returncode != 0 and "file is not a database" in done.stdout + done.stderr, (command, done)
        assert "Traceback" not in done.stderr
        assert oct(other.stat().st_mode & 0o777) == "0o644", command
        assert other.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts"], command


def test_a_database_url_naming_a_folder_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    """DATABASE_URL=sqlite:////tmp (a folder typed for a file): refused in one line, the folder's mode untouched
    (it used to be tightened to 600, which locks every other user out of a folder meant for everyone)."""
    common = tmp_path / "common"
    common.mkdir()
    common.chmod(0o1777)
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = f"sqlite:///{common}"
    for command in (("check",), ("channels", "list"), ("serve",)):
        done = run_cli(env, *command, cwd=tmp_path)
        assert done.returncode != 0 and f"{common}: it is a folder" in done.stdout + done.stderr, (command, done)
        assert "Traceback" not in done.stderr
        assert oct(common.stat().st_mode & 0o7777) == "0o1777", command
        assert list(common.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["common"], command
