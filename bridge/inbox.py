"""The events inbox: each Events API request's body recorded in a SQLite file of its own before Slack's ack.

The ingress thread (`ingress.py`) is its only user: it owns the connection, so every call here is synchronous and
short (WAL, synchronous=NORMAL: one commit, no fsync, a few tens of microseconds), made on the ingress thread's
loop and never on the main one. A file of its own, beside the database (`<db>.inbox`), so that recording an event
never waits for the store's write lock, which turn bookkeeping holds most of the time under load.

A row is removed once the main loop has handled its event (the turn it made is in the store, or it was ignored).
Rows still there when the process starts are handed over again: the store drops an event it already has (by its
event id and its message), so a crash between handling and removal repeats nothing. The request's signature is
kept until its replay window ends, in the same transaction as its row: a replayed request is refused even after
a restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.store.sqlite_connection import foreign_file, private_files

log = logging.getLogger(__name__)

PRIVATE = 0o600
PRUNE_EVERY = 1000  # recorded events between two sweeps of expired signatures
CHECKPOINT_EVERY = 1.0  # seconds between two copies of the inbox's write-ahead log into its file
WAL_BYTES = 4 << 20  # the log's file is cut back to this when it starts over (SQLite would leave it at its largest)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, headers TEXT NOT NULL, body BLOB NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, signature TEXT NOT NULL DEFAULT '', expires_at REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS signatures (signature TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
    # An event's signature is kept beyond its row (until its replay window ends) by the row's own INSERT: one
    # statement, so recording an event is one trip into SQLite (each trip gives the interpreter lock away and has
    # to win it back from the main thread), and a replay fails it whole.
    "CREATE TRIGGER IF NOT EXISTS inbox_signature AFTER INSERT ON inbox WHEN NEW.signature <> '' BEGIN"
    " INSERT INTO signatures (signature, expires_at) VALUES (NEW.signature, NEW.expires_at); END",
)
# Columns an inbox made by an earlier version lacks (its rows, from before, carry no signature).
ADDED_COLUMNS = {
    "signature": "ALTER TABLE inbox ADD COLUMN signature TEXT NOT NULL DEFAULT ''",
    "expires_at": "ALTER TABLE inbox ADD COLUMN expires_at REAL NOT NULL DEFAULT 0",
}


@dataclass(frozen=True)
class Arrival:
    """One recorded event, as the main loop dispatches it: the request's headers (lower-cased) and body."""

    id: int
    headers: dict[str, str]
    body: bytes
    attempts: int = 0


class Replayed(Exception):
    """The request's signature was recorded before, within its window."""


def inbox_path(database_path: str) -> str:
    """Where a SQLite database's inbox lives: beside it, or in memory with an in-memory database."""
    return ":memory:" if database_path == ":memory:" else f"{database_path}.inbox"


def tighten_left(path: str) -> None:
    """An inbox a run with it on left behind, in a run that never opens it (the inbox off, Socket Mode): readable
    by its owner only all the same, with its WAL and SHM, since it holds events' words (a loose one is said)."""
    if path != ":memory:" and os.path.exists(path) and not foreign_file(path):
        private_files(path)


def waiting(path: str) -> int:
    """Events an inbox file still holds, read without creating or changing anything (0 when there is none)."""
    if path == ":memory:" or not os.path.exists(path):
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM inbox").fetchone()[0])
    except sqlite3.Error:
        return 0


class Checkpointer:
    """Copies the inbox's write-ahead log into its file from a thread and a connection of its own. Left to SQLite,
    the copy (with its fsync) happens inside whichever commit fills the log past 1000 pages: on the ingress thread,
    in an acknowledgement. Measured under a burst, moving it took about 0.7 ms off the acknowledgement p99, into
    one channel and over 50. A passive checkpoint never waits for the writer, nor the writer for it."""

    def __init__(self, path: str, every: float = CHECKPOINT_EVERY) -> None:
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            while not self._stop.wait(self.every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # read to its end: no snapshot kept
                except sqlite3.Error as exc:  # tried again next time; the log only grows meanwhile
                    log.warning("events inbox checkpoint failed path=%s error=%s", self.path, exc)


class Inbox:
    def __init__(self, path: str, checkpoint_every: float = CHECKPOINT_EVERY) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._recorded = 0
        self._checkpoint_every = checkpoint_every
        self._checkpointer: Checkpointer | None = None

    def open(self) -> list[Arrival]:
        """Open (creating it, readable by its owner only) and return the events still to be handled, oldest
        first."""
        if self.path != ":memory:":
            if foreign_file(self.path):  # never tightened nor written: it is someone else's
                raise ValueError("file is not a database")
            private_files(self.path)  # its WAL and SHM too (they hold events' words), an older loose one said
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
            db.execute(f"PRAGMA {pragma}")
        db.execute(SCHEMA[0])
        columns = {row[1] for row in db.execute("PRAGMA table_info(inbox)")}
        for column, statement in ADDED_COLUMNS.items():
            if column not in columns:
                db.execute(statement)
        for statement in SCHEMA[1:]:
            db.execute(statement)
        db.execute("DELETE FROM signatures WHERE expires_at < ?", (time.time(),))
        self._db = db
        if self.path != ":memory:":
            db.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's thread does it
            db.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
            self._checkpointer = Checkpointer(self.path, self._checkpoint_every)
            self._checkpointer.start()
        rows = db.execute("SELECT id, headers, body, attempts FROM inbox ORDER BY id").fetchall()
        return [Arrival(int(i), json.loads(h), bytes(b), int(a)) for i, h, b, a in rows]

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the inbox is not open")
        return self._db

    def record(self, signature: str, expires_at: float, headers: Mapping[str, str], body: bytes) -> Arrival:
        """The event and its signature in one statement (its own transaction); Replayed when the signature is
        already there."""
        db = self.db
        try:
            cursor = db.execute(
                "INSERT INTO inbox (headers, body, signature, expires_at) VALUES (?, ?, ?, ?)",
                (json.dumps(dict(headers)), body, signature, expires_at),
            )
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname != "SQLITE_CONSTRAINT_PRIMARYKEY":
                raise  # not the signature's key: a write that failed, not a replay
            raise Replayed from None  # the trigger found the signature kept: nothing was written
        self._recorded += 1
        if self._recorded % PRUNE_EVERY == 0:
            db.execute("DELETE FROM signatures WHERE expires_at < ?", (time.time(),))
        assert cursor.lastrowid is not None
        return Arrival(cursor.lastrowid, dict(headers), body)

    def remove(self, ids: Iterable[int]) -> None:
        self._each("DELETE FROM inbox WHERE id = ?", ids)

    def attempted(self, ids: Iterable[int]) -> None:
        """One more failed attempt for each (so a restart knows how many were made)."""
        self._each("UPDATE inbox SET attempts = attempts + 1 WHERE id = ?", ids)

    def _each(self, statement: str, ids: Iterable[int]) -> None:
        """One transaction for the batch (autocommit would commit each row on its own)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(statement, [(i,) for i in ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Closed last, the inbox's own connection copies what is left of the log and removes it."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None
