"""bridge/inbox.py: an event and its signature in one statement, a replay refused (after a reopen too), rows
left over handed back in order, removals and attempts kept, the file private."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from bridge.inbox import WAL_BYTES, Inbox, Replayed, inbox_path

HEADERS = {"content-type": "application/json", "x-slack-retry-num": "1"}


def later() -> float:
    return time.time() + 300


def test_the_inbox_sits_beside_the_database_or_in_memory() -> None:
    assert inbox_path("/var/bridge.db") == "/var/bridge.db.inbox"
    assert inbox_path(":memory:") == ":memory:"


def test_recorded_events_come_back_in_order_after_a_reopen_until_removed(tmp_path: Path) -> None:
    path = str(tmp_path / "bridge.db.inbox")
    inbox = Inbox(path)
    assert inbox.open() == []
    first = inbox.record("v0=a", later(), HEADERS, b'{"n":1}')
    second = inbox.record("v0=b", later(), HEADERS, b'{"n":2}')
    third = inbox.record("v0=c", later(), HEADERS, b'{"n":3}')
    assert first.id < second.id < third.id
    inbox.remove([second.id])
    inbox.attempted([third.id])
    inbox.close()

    again = Inbox(path)
    left = again.open()
    assert [(a.id, a.body, a.attempts) for a in left] == [(first.id, b'{"n":1}', 0), (third.id, b'{"n":3}', 1)]
    assert left[0].headers == HEADERS
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again.close()


def test_a_replayed_signature_is_refused_and_records_nothing_even_after_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "x.inbox")
    inbox = Inbox(path)
    inbox.open()
    kept = inbox.record("v0=same", later(), HEADERS, b"{}")
    inbox.remove([kept.id])
    with pytest.raises(Replayed):
        inbox.record("v0=same", later(), HEADERS, b'{"other":1}')
    inbox.close()
    again = Inbox(path)
    assert again.open() == []
    with pytest.raises(Replayed):
        again.record("v0=same", later(), HEADERS, b"{}")
    again.close()


def test_expired_signatures_are_swept_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "x.inbox")
    inbox = Inbox(path)
    inbox.open()
    inbox.record("v0=old", time.time() - 1, HEADERS, b"{}")
    inbox.close()
    again = Inbox(path)
    again.open()
    assert again.db.execute("SELECT count(*) FROM signatures").fetchone()[0] == 0
    again.close()


def test_an_event_that_cannot_be_written_raises_and_leaves_nothing_half_done(tmp_path: Path) -> None:
    inbox = Inbox(str(tmp_path / "x.inbox"))
    inbox.open()
    inbox.db.execute("CREATE TRIGGER full BEFORE INSERT ON inbox BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(Exception, match="disk full"):
        inbox.record("v0=a", later(), HEADERS, b"{}")
    # The signature went back with the event: the same request delivered again is not taken for a replay.
    inbox.db.execute("DROP TRIGGER full")
    assert inbox.record("v0=a", later(), HEADERS, b"{}").body == b"{}"
    inbox.close()


def test_an_inbox_from_an_earlier_version_keeps_its_rows_and_refuses_replays(tmp_path: Path) -> None:
    """Its table had no signature columns (the signature was a second INSERT): they are added on open."""
    path = str(tmp_path / "old.inbox")
    old = sqlite3.connect(path, isolation_level=None)
    old.execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, headers TEXT NOT NULL, body BLOB NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute("CREATE TABLE signatures (signature TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
    old.execute("INSERT INTO inbox (headers, body, attempts) VALUES (?, ?, 1)", ('{"a": "b"}', b'{"n":1}'))
    old.execute("INSERT INTO signatures VALUES ('v0=before', ?)", (later(),))
    old.close()
    inbox = Inbox(path)
    assert [(a.body, a.headers, a.attempts) for a in inbox.open()] == [(b'{"n":1}', {"a": "b"}, 1)]
    with pytest.raises(Replayed):
        inbox.record("v0=before", later(), HEADERS, b"{}")
    inbox.record("v0=new", later(), HEADERS, b'{"n":2}')
    with pytest.raises(Replayed):
        inbox.record("v0=new", later(), HEADERS, b'{"n":3}')
    assert [a.body for a in Inbox(path).open()] == [b'{"n":1}', b'{"n":2}']
    inbox.close()


def test_the_write_ahead_log_is_copied_by_a_thread_of_its_own_never_in_a_commit(tmp_path: Path) -> None:
    """An acknowledgement's commit never copies the log into the file (SQLite would, past 1000 pages, with an
    fsync): the inbox's connection does not, and the checkpointer's thread keeps the log short meanwhile."""
    path = str(tmp_path / "x.inbox")
    inbox = Inbox(path, checkpoint_every=0.05)
    inbox.open()
    try:
        assert inbox.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        body = b"x" * 2000
        for n in range(4000):  # some 60 MB through the log (the row, its signature, their indexes)
            inbox.record(f"v0={n}", later(), HEADERS, body)
            if n % 500 == 0:
                time.sleep(0.06)  # a burst's pauses: the checkpointer's turns
        time.sleep(0.2)
        inbox.record("v0=last", later(), HEADERS, body)  # the first write after a complete copy restarts the log
        assert os.path.getsize(path + "-wal") <= WAL_BYTES, "the log grew as if nothing copied it"
    finally:
        inbox.close()
    assert not os.path.exists(path + "-wal"), "closed last, the inbox's connection leaves no log behind"
    assert len(Inbox(path).open()) == 4001


def test_an_inbox_path_holding_another_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    other = tmp_path / "bridge.db.inbox"
    other.write_text("not mine\n")
    other.chmod(0o644)
    with pytest.raises(ValueError, match="not a database"):
        Inbox(str(other)).open()
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o644 and other.read_text() == "not mine\n"
