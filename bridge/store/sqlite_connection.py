"""The SQLite store's connection: the file (locked for one process, private), WAL, the writer's and the
reader's threads, single-trip transactions and migrations. The store's tables are used in `sqlite_journal.py`
(a turn's steps, outbox and transcript) and `sqlite.py` (bindings, the turn queue, signatures, leases)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bridge.store.base import StoreError
from bridge.store.database_url import sqlite_path
from bridge.store.locks import UrgentFirstLock
from bridge.store.schema import SQLITE_MIGRATIONS as MIGRATIONS
from bridge.store.schema import newer_schema
from bridge.store.write_batches import WriteBatches

log = logging.getLogger(__name__)
PRIVATE = 0o600
T = TypeVar("T")
PING_LOCK_SECONDS = 2.0  # a readiness probe's wait for the write lock (GET /readyz gives up after 3)
Params = tuple[Any, ...]


def now_text() -> str:
    return datetime.now(UTC).isoformat()


def _can_write(path: str) -> None:
    """A write committed, waiting PING_LOCK_SECONDS at most for the lock: the schema version set to what it is
    (a write lock given back unused writes nothing, so a full disk passed). A file gone is not made again
    (mode=rw)."""
    try:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=rw", uri=True, timeout=PING_LOCK_SECONDS)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"the database {path} cannot be written: {exc}") from None


def _missing_folder(path: str) -> Path | None:
    parent = Path(path).expanduser().absolute().parent
    return None if parent.is_dir() else parent


def cannot_create(path: str, exc: OSError) -> StoreError:
    """A file beside the database that could not be made (a folder this user may not write, a read-only disk),
    in one sentence that says what to change."""
    file = Path(path).expanduser().absolute()
    return StoreError(
        f"cannot create the database's file {file.name} in {file.parent} ({exc.strerror or exc}): set "
        "DATABASE_URL to a file in a folder this user may write, or make that folder writable."
    )


def create_private(path: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """os.open with mode 600; StoreError (cannot_create) when the file cannot be made."""
    try:
        return os.open(path, flags, PRIVATE)
    except OSError as exc:
        raise cannot_create(path, exc) from None


def hold_exclusively(path: str) -> int:
    """Lock `<path>.lock` for this process (flock, released by the kernel when the process ends, however it
    ends); StoreError naming the holder when another process has it. Returns the open descriptor to keep. The
    path is the file's real one: another process naming it through a symlink finds the same lock."""
    fd = create_private(f"{os.path.realpath(path)}.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"another bridge process (pid {holder}) is already using {path}; a SQLite database serves one "
            "process: stop that one first, or use PostgreSQL (DATABASE_URL=postgres://...) to run several"
        ) from None
    try:  # the pid is only a note for the refusal above; the flock is held, and a full disk is said by SQLite
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError as exc:
        log.debug("could not note this process's id in the lock file error=%s", exc.strerror or exc)
    return fd


SQLITE_HEADER = b"SQLite format 3\x00"


def foreign_file(path: str) -> bool:
    """Whether `path` holds something other than a SQLite database (a DATABASE_URL mistyped onto a config file or
    a folder, say): such a file is never locked beside, tightened or written; opening it says it is not one."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True  # a folder, a device, a pipe: never the bridge's to change
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return False  # created as the bridge's own
    except PermissionError:
        return False  # SQLite's own open says so
    return head not in (b"", SQLITE_HEADER)


BRIDGE_TABLES = frozenset({"bindings", "turns"})  # in every schema since v1 (schema.py), never dropped


def others_tables(path: str) -> list[str]:
    """Another application's tables, when `path` is a SQLite database with tables but not the bridge's (a
    DATABASE_URL mistyped onto another app's file: its user_version is its own, not a bridge schema version).
    Read without writing, tightening or locking anything: a file nobody has open (no -wal, no -journal) as
    immutable, since a read-only open of a WAL file would leave a -wal and -shm beside it; one whose read-only
    read fails (another program holds a write on it, or its crash left a rollback journal that only a writer may
    undo: never so for the bridge's own file, always in WAL) as immutable too, as it is on disk. [] for a missing
    or empty file, the bridge's own at any version, or one SQLite cannot read (its own open then says why)."""
    if not os.path.isfile(path):
        return []
    in_use = any(os.path.exists(f"{path}{suffix}") for suffix in ("-wal", "-journal"))
    names = _tables(path, "mode=ro") if in_use else None
    if names is None:
        names = _tables(path, "immutable=1")
    theirs = sorted(name for name in names or () if not name.startswith("sqlite_"))
    return [] if names is None or BRIDGE_TABLES <= names else theirs


def _tables(path: str, mode: str) -> set[str] | None:
    """The file's table names read with the URI parameter `mode`; None when SQLite cannot read them so."""
    try:
        conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?{mode}", uri=True, timeout=PING_LOCK_SECONDS)
        try:
            return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def not_the_bridges(path: str) -> str | None:
    """Why the file at `path` is refused, in words, before anything is locked beside it, tightened or written:
    it is no SQLite database (foreign_file), or another application's (others_tables); None when it may open."""
    if foreign_file(path):
        return "file is not a database (left as it was)"
    theirs = others_tables(path)
    if not theirs:
        return None
    named = ", ".join(theirs[:5]) + (", …" if len(theirs) > 5 else "")
    return f"it holds another application's tables ({named}), not the bridge's (left as it was)"


def loose_files(path: str) -> dict[str, int]:
    """The database's files (it, its WAL, SHM and rollback journal) that others may read or write, with their
    modes: `serve` tightens them (private_files), `check` names them."""
    loose = {}
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            loose[name] = mode
    return loose


def private_files(path: str) -> None:
    """The database and its WAL and SHM files readable by their owner only: created so (SQLite gives the WAL
    and SHM files the database's mode), and an older world-readable file is tightened when it can be (a warning
    when not: on a read-only disk the open that follows fails with a StoreError that says so)."""
    if not os.path.exists(path):
        os.close(create_private(path))
    for name, mode in loose_files(path).items():
        try:
            os.chmod(name, PRIVATE)
        except OSError as exc:  # a read-only disk, another user's file: SQLite's own open says if it cannot write
            log.warning(
                "database file is readable by others (mode %o) and could not be made 600 (%s) path=%s",
                mode,
                exc.strerror or exc,
                name,
            )
            continue
        log.warning("database file was readable by others (mode %o); now 600 path=%s", mode, name)


class SqliteConnection:
    """The file and its two connections; the store's methods are its subclasses'."""

    def __init__(self, url: str, exclusive: bool = False, migrate: bool = True) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._exclusive = exclusive
        self._migrates = migrate  # False for `check`, which changes nothing: an older file keeps its schema and mode
        self._lock_fd: int | None = None
        on_disk = exclusive and self.path != ":memory:" and _missing_folder(self.path) is None
        if on_disk and not_the_bridges(self.path) is None:
            self._lock_fd = hold_exclusively(self.path)  # at once: before the process builds anything else
        self._db: aiosqlite.Connection | None = None
        # Bookkeeping reads go to a connection of their own (WAL lets it read beside the writer), so that the
        # acknowledgement's write never waits behind them on the writer's thread.
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = UrgentFirstLock()  # multi-statement transactions (`_write`)
        self._batches = WriteBatches(lambda work: in_thread(self.db, work), self._write_lock.hold)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on the shared connection; BEGIN IMMEDIATE takes the file lock
        first, so that two processes (or a migration racing a start) serialise instead of deadlocking.
        `urgent` writes (a new event, before Slack's ack) go ahead of queued turn bookkeeping."""
        async with self._write_lock.hold(urgent):
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                await self.db.execute("COMMIT")
            except BaseException:
                # A statement whose await was cancelled still runs on the writer's thread: the rollback queued
                # after it ends whatever it left open, or every later write would find a transaction open.
                await asyncio.shield(in_thread(self.db, _end_transaction))
                raise

    async def _transact(self, work: Callable[[sqlite3.Connection], T], urgent: bool = False) -> T:
        """One write transaction, `work(conn)` run on the writer's thread between BEGIN IMMEDIATE and COMMIT,
        shared with the writes waiting beside it (`write_batches.py`: one trip and one COMMIT for all of them,
        each in a savepoint of its own). Urgent ones (a new event, which Slack waits for) go first. The rare
        multi-statement transaction (`_write`) holds the write lock; a batch that finds it open goes after it."""
        return await self._batches.transact(work, urgent)

    @property
    def _reads(self) -> aiosqlite.Connection:
        return self._reader or self.db

    async def _all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A query's rows in one trip to the reader's thread."""
        return list(await self._reads.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def open(self) -> None:
        if self.path != ":memory:":
            parent = await asyncio.to_thread(_missing_folder, self.path)
            if parent is not None:
                raise StoreError(f"cannot create the database {self.path}: the folder {parent} does not exist")
            if await asyncio.to_thread(os.path.isdir, self.path):
                raise StoreError(
                    f"cannot open the database {self.path}: it is a folder; DATABASE_URL names the database file "
                    f"(for example sqlite:///{os.path.join(self.path, 'bridge.db')})"
                )
            if refused := await asyncio.to_thread(not_the_bridges, self.path):
                raise StoreError(f"cannot open the database {self.path}: {refused}")
            if self._exclusive and self._lock_fd is None:
                self._lock_fd = await asyncio.to_thread(hold_exclusively, self.path)
            if self._migrates:  # `check` names a loose file (loose_files) instead of tightening it
                await asyncio.to_thread(private_files, self.path)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            await self._db.execute_fetchall("PRAGMA busy_timeout=5000")
            await self._db.execute_fetchall("PRAGMA synchronous=NORMAL")
            if self._migrates:
                version = await self.schema_version()  # read first: a newer bridge's file is never written
                if version > len(MIGRATIONS):
                    raise newer_schema(version, self.path)
                await self._db.execute_fetchall("PRAGMA journal_mode=WAL")
                if version < len(MIGRATIONS):  # an up-to-date file is not locked for a migration with nothing to do
                    await self._migrate()
            if self.path != ":memory:":  # a second connection to :memory: would be another database
                self._reader = await aiosqlite.connect(self.path, isolation_level=None)
                self._reader.row_factory = sqlite3.Row
                await self._reader.execute_fetchall("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot open the database {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._batches.drain()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the flock goes with it
            self._lock_fd = None

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        async with self._write() as db:
            current = await self.schema_version()
            if current > len(MIGRATIONS):  # a newer bridge migrated it since this process read its version
                raise newer_schema(current, self.path)
            for version, script in enumerate(MIGRATIONS, start=1):
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version={version}")

    async def ping(self) -> None:
        """A write committed on a connection of its own: `SELECT 1` reads no page and answers while another
        process (a `sqlite3` shell left in a transaction, a backup) holds the lock that recording each turn needs,
        or while the disk is full."""
        if self.path == ":memory:":
            await self._one("SELECT 1")
            return
        await asyncio.to_thread(_can_write, self.path)


TOP_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=? AND channel_id=?"


def top_seq(conn: sqlite3.Connection, team_id: str, channel_id: str) -> int:
    row = conn.execute(TOP_SEQ, (team_id, channel_id)).fetchone()
    return int(row[0]) if row else 0


async def in_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the connection's own thread in one trip (aiosqlite's public calls are one statement each)."""
    result: T = await db._execute(work, db._conn)  # type: ignore[no-untyped-call]
    return result


def _end_transaction(conn: sqlite3.Connection) -> None:
    """Roll back the transaction open on `conn`, if any (a failed COMMIT leaves it open)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
