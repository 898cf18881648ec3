"""A DATABASE_URL pointed by mistake at another application's SQLite database: every command refuses it in one
line and leaves it as it was (no tables added, no WAL, no mode change, no lock file beside it), whatever that
application numbers its own schema with; an empty SQLite file is still taken as the bridge's new database."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bridge.store.schema import SQLITE_MIGRATIONS
from tests.e2e.harness import base_env, run_cli

LATEST = len(SQLITE_MIGRATIONS)


def _other_apps_database(path: Path, user_version: int, journal: str = "delete") -> bytes:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE crm_contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
        conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
        conn.execute("INSERT INTO crm_contacts (name) VALUES ('Ada')")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.commit()
    path.chmod(0o644)
    return path.read_bytes()


def _env(tmp_path: Path, database: Path) -> dict[str, str]:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = f"sqlite:///{database}"
    return env


@pytest.mark.parametrize(("user_version", "journal"), [(0, "delete"), (5, "delete"), (LATEST, "delete"), (74, "wal")])
def test_another_apps_sqlite_database_is_refused_and_left_as_it_was(
    tmp_path: Path, user_version: int, journal: str
) -> None:
    """Its user_version is its own: 0 is not 'no tables yet', 5 not an old bridge's, 74 not a newer bridge's; a
    WAL file closed by its application is read without a -wal or -shm left beside it."""
    other = tmp_path / "crm.sqlite"
    before = _other_apps_database(other, user_version, journal)
    for command in (("channels", "list"), ("serve",)):
        done = run_cli(_env(tmp_path, other), *command, cwd=tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode == 1, (command, done)
        assert (
            f"cannot open the database {other}: it holds another application's tables (crm_contacts, users), "
            "not the bridge's (left as it was)"
        ) in out, (command, out)
        for wrong in ("newer version of the bridge", "no such table", "Traceback"):
            assert wrong not in out, (command, out)
        assert other.read_bytes() == before, command
        assert oct(other.stat().st_mode & 0o777) == "0o644", command
        assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.sqlite"], command


def test_check_on_another_apps_sqlite_database_fails_its_database_line(tmp_path: Path) -> None:
    other = tmp_path / "crm.sqlite"
    before = _other_apps_database(other, 0)
    done = run_cli(_env(tmp_path, other), "check", cwd=tmp_path)
    [line] = [x for x in done.stdout.splitlines() if " database:" in x]
    assert line.startswith("FAIL"), line
    assert "another application's tables (crm_contacts, users)" in line, line
    assert "no tables yet" not in line and "600" not in line, line
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.sqlite"]


def test_an_empty_sqlite_file_is_still_made_the_bridges_database(tmp_path: Path) -> None:
    """A SQLite file with no tables (made by `sqlite3 bridge.db 'VACUUM'`, say) holds nobody's data."""
    empty = tmp_path / "bridge.db"
    with closing(sqlite3.connect(empty)) as conn:
        conn.execute("PRAGMA user_version = 0")
        conn.execute("VACUUM")
    assert empty.read_bytes().startswith(b"SQLite format 3\x00")
    done = run_cli(_env(tmp_path, empty), "channels", "list", cwd=tmp_path)
    assert done.returncode == 0, done
    with closing(sqlite3.connect(empty)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST


def test_another_apps_database_it_has_open_is_refused_beside_it(tmp_path: Path) -> None:
    """The other application running, its WAL file open: read beside it, nothing of its data changed."""
    other = tmp_path / "crm.sqlite"
    _other_apps_database(other, 0, "wal")
    with closing(sqlite3.connect(other)) as theirs:
        theirs.execute("INSERT INTO users (email) VALUES ('b@example.com')")
        theirs.commit()
        done = run_cli(_env(tmp_path, other), "channels", "list", cwd=tmp_path)
        assert done.returncode == 1 and "another application's tables (crm_contacts, users)" in done.stderr, done
        tables = sorted(r[0] for r in theirs.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert tables == ["crm_contacts", "sqlite_sequence", "users"]
        assert theirs.execute("SELECT count(*) FROM users").fetchone()[0] == 2
    assert oct(other.stat().st_mode & 0o777) == "0o644"
    assert not (tmp_path / "crm.sqlite.lock").exists()
