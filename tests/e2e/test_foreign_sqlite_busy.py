"""Another application's SQLite database that the application is writing to (a write
transaction held a few seconds, as a busy app or a batch job does) when `channels list` starts is refused and left
as it was, as when it is idle, and so is one whose crash left a rollback journal. Found by review revDL:
others_tables gives up after PING_LOCK_SECONDS on the locked file and says
"not another app's" ([]), and the open that follows waits out the lock (busy_timeout 5 s) and creates the
bridge's tables inside the other app's file."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from tests.e2e.harness import base_env, run_cli


def test_another_apps_database_busy_with_a_write_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    other = tmp_path / "crm.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE crm_contacts (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
    locked = threading.Event()

    def the_other_app_writes() -> None:  # a write transaction of about 5 s (rollback journal: readers wait)
        with closing(sqlite3.connect(other, isolation_level=None)) as app:
            app.execute("BEGIN EXCLUSIVE")
            app.execute("INSERT INTO users (email) VALUES ('a@example.com')")
            locked.set()
            time.sleep(5.0)
            app.execute("COMMIT")

    writer = threading.Thread(target=the_other_app_writes)
    writer.start()
    assert locked.wait(5)
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = f"sqlite:///{other}"
    try:
        done = run_cli(env, "channels", "list", cwd=tmp_path)
    finally:
        writer.join()
    with closing(sqlite3.connect(other)) as conn:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    out = done.stdout + done.stderr
    assert tables == ["crm_contacts", "users"], (tables, out)
    assert journal == "delete", journal
    assert done.returncode == 1, out
    assert "it holds another application's tables (crm_contacts, users)" in out, out


def test_another_apps_database_its_crash_left_a_hot_journal_in_is_refused(tmp_path: Path) -> None:
    """The other application died mid-transaction (its -journal is hot): a read-only open cannot roll it back
    ('attempt to write a readonly database'), others_tables says [] and the bridge's own open takes the file."""
    import subprocess
    import sys

    other = tmp_path / "crm.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE crm_contacts (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO users (email) VALUES (?)", [("x" * 200,)] * 2000)
        conn.commit()
    crash = (
        "import os, sqlite3\n"
        f"c = sqlite3.connect({str(other)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA cache_size=1'); c.execute('BEGIN')\n"
        "c.execute(\"UPDATE users SET email = email || 'y'\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    assert (tmp_path / "crm.sqlite-journal").exists()
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = f"sqlite:///{other}"
    done = run_cli(env, "channels", "list", cwd=tmp_path)
    out = done.stdout + done.stderr
    with closing(sqlite3.connect(other)) as conn:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    assert tables == ["crm_contacts", "users"], (tables, out)
    assert done.returncode == 1, out
