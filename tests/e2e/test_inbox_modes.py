"""An older events inbox left readable by others (its write-ahead log too, after a crash) is tightened at
start, like the database's own files (docs/security.md, Files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import APP_TOKEN, BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

# An earlier bridge's inbox, at a permissive umask, killed mid-write: its -wal and -shm files stay behind, 644,
# holding an acknowledged event's body (a person's words).
CRASHED_INBOX = """
import os, sqlite3, sys
os.umask(0o022)
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, headers TEXT NOT NULL,"
           " body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, signature TEXT NOT NULL DEFAULT '',"
           " expires_at REAL NOT NULL DEFAULT 0)")
db.execute("INSERT INTO inbox (headers, body) VALUES ('{}', x'7b7d')")
db.execute("DELETE FROM inbox")
os._exit(0)
"""


def test_an_older_inbox_and_its_wal_are_made_600_at_start(tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"
    inbox = Path(f"{db}.inbox")
    subprocess.run([sys.executable, "-c", CRASHED_INBOX, str(inbox)], check=True)
    for name in (inbox, Path(f"{inbox}-wal"), Path(f"{inbox}-shm")):
        assert name.exists() and name.stat().st_mode & 0o777 == 0o644, name
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, db)).start(tmp_path / "bridge.log")
        try:
            files = [p for p in tmp_path.iterdir() if p.name.startswith("bridge.db")]
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
        finally:
            bridge.stop()
    assert {n: m for n, m in modes.items() if m != "0o600"} == {}, modes


def test_an_older_inbox_readable_by_others_is_tightened_with_a_warning(tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"
    inbox = Path(f"{db}.inbox")
    subprocess.run([sys.executable, "-c", CRASHED_INBOX.replace("os._exit(0)", "db.close()"), str(inbox)], check=True)
    assert inbox.stat().st_mode & 0o777 == 0o644
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, db)).start(tmp_path / "bridge.log")
        try:
            logs = bridge.logs()
        finally:
            bridge.stop()
    assert inbox.stat().st_mode & 0o777 == 0o600
    assert "readable by others" in logs and str(inbox) in logs, logs


@pytest.mark.parametrize("mode", ["inbox-off", "socket"])
def test_an_older_inbox_is_made_600_by_a_run_that_does_not_open_it(tmp_path: Path, mode: str) -> None:
    """`check` names a loose inbox and says `serve` makes it 600: with HTTP_EVENTS_INBOX=false (or in Socket
    Mode) the inbox is never opened, and it stayed readable by others."""
    db = tmp_path / "bridge.db"
    inbox = Path(f"{db}.inbox")
    subprocess.run([sys.executable, "-c", CRASHED_INBOX, str(inbox)], check=True)
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        extra = {"HTTP_EVENTS_INBOX": "false"} if mode == "inbox-off" else {"SLACK_APP_TOKEN": APP_TOKEN}
        env = base_env(slack.api_url, letta.base_url, db, **extra)
        bridge = BridgeProcess(env, mode="serve" if mode == "inbox-off" else "socket").start(tmp_path / "bridge.log")
        try:
            if mode == "socket":
                slack.wait_for(slack.socket_connected, timeout=20)
            logs = bridge.logs()
        finally:
            bridge.stop()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("bridge.db.inbox")]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o600" for p in files}, logs
    assert "readable by others" in logs and str(inbox) in logs, logs
