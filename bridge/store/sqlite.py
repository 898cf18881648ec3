"""The embedded default store: one SQLite file in WAL mode, created on first start, migrated in order."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bridge.domain import AgentFailure, AgentReply, Binding, RunnerChoice, StepRecord, Target, Turn
from bridge.store.base import (
    LIVE,
    HistoryEntry,
    OutboxItem,
    PendingTurn,
    StoreError,
    ThreadKey,
    binding_from_row,
    pending_from_row,
    sqlite_path,
    step_outcome,
)
from bridge.store.locks import UrgentFirstLock
from bridge.store.schema import SQLITE_MIGRATIONS as MIGRATIONS

log = logging.getLogger(__name__)
PRIVATE = 0o600


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _missing_folder(path: str) -> Path | None:
    parent = Path(path).expanduser().absolute().parent
    return None if parent.is_dir() else parent


def _encode_target(target: Target) -> str:
    return json.dumps([{"id": a.id, "name": a.name} for a in target.agents])


def hold_exclusively(path: str) -> int:
    """Lock `<path>.lock` for this process (flock, released by the kernel when the process ends, however it
    ends); StoreError naming the holder when another process has it. Returns the open descriptor to keep."""
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"another bridge process (pid {holder}) is already using {path}; a SQLite database serves one "
            "process: stop that one first, or use PostgreSQL (DATABASE_URL=postgres://...) to run several"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def private_files(path: str) -> None:
    """The database and its WAL and SHM files readable by their owner only: created so (SQLite gives the WAL
    and SHM files the database's mode), and an older world-readable file is tightened."""
    if not os.path.exists(path):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, PRIVATE)
            log.warning("database file was readable by others (mode %o); now 600 path=%s", mode, name)


class SqliteStore:
    def __init__(self, url: str, exclusive: bool = False) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._exclusive = exclusive
        self._lock_fd: int | None = None
        if exclusive and self.path != ":memory:" and _missing_folder(self.path) is None:
            self._lock_fd = hold_exclusively(self.path)  # at once: before the process builds anything else
        self._db: aiosqlite.Connection | None = None
        self._write_lock = UrgentFirstLock()
        # SQLite means one process: binding leases live in memory (owner, monotonic expiry), so a restart
        # after a crash resumes at once instead of waiting for the dead process's leases to expire.
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}

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
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def open(self) -> None:
        if self.path != ":memory:":
            parent = await asyncio.to_thread(_missing_folder, self.path)
            if parent is not None:
                raise StoreError(f"cannot create the database {self.path}: the folder {parent} does not exist")
            if self._exclusive and self._lock_fd is None:
                self._lock_fd = await asyncio.to_thread(hold_exclusively, self.path)
            await asyncio.to_thread(private_files, self.path)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot open the database {self.path}: {exc}") from None

    async def close(self) -> None:
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
            for version, script in enumerate(MIGRATIONS, start=1):
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version={version}")

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None:
        async with self.db.execute(
            "SELECT * FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id)
        ) as cursor:
            row = await cursor.fetchone()
        return binding_from_row(row) if row else None

    async def put_binding(self, binding: Binding) -> Binding | None:
        t = binding.target
        async with self._write() as db:
            previous = await self.get_binding(binding.team_id, binding.channel_id)
            await db.execute(
                "INSERT OR REPLACE INTO bindings (team_id, channel_id, kind, group_id, agents, manager_type,"
                " description, runner, bound_by, bound_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    binding.team_id,
                    binding.channel_id,
                    t.kind,
                    t.group_id,
                    _encode_target(t),
                    t.manager_type,
                    t.description,
                    binding.runner,
                    binding.bound_by,
                    binding.bound_at.isoformat(),
                ),
            )
            top = await self._top_seq(binding.team_id, binding.channel_id)
            for agent in t.agents:
                # An agent new to this channel starts from now: it is not shown replies from before it joined.
                await db.execute(
                    "INSERT OR IGNORE INTO cursors (team_id, channel_id, agent_id, seq) VALUES (?,?,?,?)",
                    (binding.team_id, binding.channel_id, agent.id, top),
                )
            await self._log(binding.team_id, binding.channel_id, "connect", t.ref, binding.runner, binding.bound_by)
        return previous

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None:
        async with self._write() as db:
            previous = await self.get_binding(team_id, channel_id)
            if previous is None:
                return None
            await db.execute("DELETE FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id))
            await self._log(team_id, channel_id, "disconnect", previous.target.ref, previous.runner, actor)
        return previous

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]:
        query = "SELECT * FROM bindings"
        params: tuple[str, ...] = ()
        if team_id is not None:
            query += " WHERE team_id=?"
            params = (team_id,)
        async with self.db.execute(query + " ORDER BY team_id, channel_id", params) as cursor:
            rows = await cursor.fetchall()
        return [binding_from_row(row) for row in rows]

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None:
        async with self._write() as db:
            binding = await self.get_binding(team_id, channel_id)
            if binding is None:
                return
            await db.execute(
                "UPDATE bindings SET runner=? WHERE team_id=? AND channel_id=?", (runner, team_id, channel_id)
            )
            await self._log(team_id, channel_id, "runner", binding.target.ref, runner, actor)

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]:
        async with self.db.execute(
            "SELECT action, target, runner, actor, at FROM binding_history WHERE team_id=? AND channel_id=?"
            " ORDER BY id DESC LIMIT ?",
            (team_id, channel_id, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            HistoryEntry(r["action"], r["target"], r["runner"], r["actor"], datetime.fromisoformat(r["at"]))
            for r in rows
        ]

    async def _log(self, team_id: str, channel_id: str, action: str, target: str, runner: str, actor: str) -> None:
        await self.db.execute(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor, at)"
            " VALUES (?,?,?,?,?,?,?)",
            (team_id, channel_id, action, target, runner, actor, _now()),
        )

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        now = _now()
        async with self._write(urgent=True) as db:
            if turn.event_id:
                cursor = await db.execute(
                    "INSERT OR IGNORE INTO seen_events (event_id, at) VALUES (?, ?)", (turn.event_id, now)
                )
                if cursor.rowcount == 0:
                    return None
            cursor = await db.execute(
                "INSERT OR IGNORE INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid,"
                " event_id, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    turn.team_id,
                    turn.channel_id,
                    turn.message_ts,
                    turn.thread_ts,
                    turn.user_id,
                    turn.text,
                    otid,
                    turn.event_id,
                    "received",
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 0:
                return None
            return cursor.lastrowid

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE turns SET status=?, error=?, updated_at=? WHERE id=? AND status<>'stopped'",
                (status, error, _now(), turn_id),
            )

    async def stop_turns(self, team_id: str, channel_id: str, thread_ts: str | None, by: str) -> list[int]:
        query = "UPDATE turns SET status='stopped', error=?, updated_at=? WHERE team_id=? AND channel_id=?"
        params: tuple[str, ...] = (f"stopped by {by}", _now(), team_id, channel_id)
        if thread_ts is not None:
            query += " AND thread_ts=?"
            params += (thread_ts,)
        async with self._write() as db:
            cursor = await db.execute(query + " AND status IN ('received', 'running') RETURNING id", params)
            rows = await cursor.fetchall()
        return sorted(int(r[0]) for r in rows)

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        async with self.db.execute("SELECT status, error FROM turns WHERE id=?", (turn_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] != "stopped":
            return None
        return str(row[1]).removeprefix("stopped by ")

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str) -> bool:
        async with self.db.execute(
            "SELECT 1 FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=? AND status<>'unbound' LIMIT 1",
            (team_id, channel_id, thread_ts),
        ) as cursor:
            return await cursor.fetchone() is not None

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        async with self.db.execute(
            "SELECT COUNT(*) FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=? AND id<?",
            (team_id, channel_id, thread_ts, turn_id),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def first_signature(self, signature: str, expires_at: float) -> bool:
        async with self._write(urgent=True) as db:
            await db.execute("DELETE FROM seen_signatures WHERE expires_at < ?", (time.time(),))
            cursor = await db.execute(
                "INSERT OR IGNORE INTO seen_signatures (signature, expires_at) VALUES (?,?)", (signature, expires_at)
            )
            return cursor.rowcount > 0

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO notices (team_id, channel_id, kind, at) VALUES (?,?,?,?)",
                (team_id, channel_id, kind, _now()),
            )
            return cursor.rowcount > 0

    async def _top_seq(self, team_id: str, channel_id: str) -> int:
        async with self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=? AND channel_id=?", (team_id, channel_id)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def unseen(
        self, team_id: str, channel_id: str, agent_id: str, from_start: bool = False
    ) -> tuple[list[AgentReply], int]:
        async with self.db.execute(
            "SELECT seq FROM cursors WHERE team_id=? AND channel_id=? AND agent_id=?", (team_id, channel_id, agent_id)
        ) as cursor:
            row = await cursor.fetchone()
        top = await self._top_seq(team_id, channel_id)
        since = int(row[0]) if row else 0 if from_start else top
        async with self.db.execute(
            "SELECT seq, agent_id, agent_name, text FROM transcript WHERE team_id=? AND channel_id=?"
            " AND seq>? AND seq<=? AND agent_id<>? ORDER BY seq",
            (team_id, channel_id, since, top, agent_id),
        ) as cursor:
            rows = await cursor.fetchall()
        return [AgentReply(r["agent_name"], r["text"], r["agent_id"]) for r in rows], top

    async def set_turn_status(self, turn_id: int, status: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE turns SET status=?, updated_at=? WHERE id=? AND status<>'stopped'", (status, _now(), turn_id)
            )

    async def unfinished_turns(self, team_id: str | None = None, channel_id: str | None = None) -> list[PendingTurn]:
        query = "SELECT * FROM turns WHERE status IN ('received', 'running')"
        params: tuple[str, ...] = ()
        if team_id is not None and channel_id is not None:
            query += " AND team_id=? AND channel_id=?"
            params = (team_id, channel_id)
        async with self.db.execute(query + " ORDER BY id", params) as cursor:
            rows = await cursor.fetchall()
        return [pending_from_row(r) for r in rows]

    async def get_step(self, turn_id: int, step: str) -> StepRecord | None:
        async with self.db.execute(
            "SELECT state, replies, failure, updated_at FROM turn_steps WHERE turn_id=? AND step=?", (turn_id, step)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        replies = tuple(AgentReply(**r) for r in json.loads(row["replies"]))
        failure = AgentFailure(**json.loads(row["failure"])) if row["failure"] else None
        return StepRecord(row["state"], replies, failure, datetime.fromisoformat(row["updated_at"]))

    async def step_sending(self, turn_id: int, step: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO turn_steps (turn_id, step, state, updated_at) VALUES (?,?,?,?)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                (turn_id, step, "sending", _now()),
            )

    async def step_answered(
        self,
        turn_id: int,
        step: str,
        replies: list[AgentReply],
        failure: AgentFailure | None,
        seen: tuple[str, str, str, int] | None,
    ) -> None:
        """The step's outcome and, for a bridge-run agent, its transcript move, in one transaction."""
        state, encoded, failed = step_outcome(replies, failure)
        async with self._write() as db:
            await db.execute(
                "INSERT INTO turn_steps (turn_id, step, state, replies, failure, updated_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, replies=excluded.replies,"
                " failure=excluded.failure, updated_at=excluded.updated_at",
                (
                    turn_id,
                    step,
                    state,
                    encoded,
                    failed,
                    _now(),
                ),
            )
            if seen is not None:
                team_id, channel_id, agent_id, upto = seen
                for reply in replies:
                    seq = await self._top_seq(team_id, channel_id) + 1
                    await db.execute(
                        "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text)"
                        " VALUES (?,?,?,?,?,?)",
                        (team_id, channel_id, seq, agent_id, reply.agent_name, reply.text),
                    )
                await db.execute(
                    "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES (?,?,?,?)"
                    " ON CONFLICT (team_id, channel_id, agent_id) DO UPDATE SET seq=MAX(seq, excluded.seq)",
                    (team_id, channel_id, agent_id, upto),
                )

    async def outbox_add(self, turn_id: int, source: str, agent_name: str | None, text: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR IGNORE INTO outbox (turn_id, source, agent_name, text) VALUES (?,?,?,?)",
                (turn_id, source, agent_name, text),
            )

    async def outbox_pending(self, turn_id: int) -> list[OutboxItem]:
        async with self.db.execute(
            "SELECT id, source, agent_name, text FROM outbox WHERE turn_id=? AND done=0 ORDER BY id", (turn_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        items = []
        for r in rows:
            async with self.db.execute("SELECT part FROM outbox_posts WHERE outbox_id=?", (r["id"],)) as cursor:
                parts = frozenset(int(p[0]) for p in await cursor.fetchall())
            items.append(OutboxItem(r["id"], r["source"], r["agent_name"], r["text"], parts))
        return items

    async def outbox_posted(self, outbox_id: int, part: int, ts: str, last: bool) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO outbox_posts (outbox_id, part, ts) VALUES (?,?,?)", (outbox_id, part, ts)
            )
            if last:
                await db.execute("UPDATE outbox SET done=1 WHERE id=?", (outbox_id,))

    async def live_started(self, turn_id: int, key: str, agent_name: str, ts: str) -> None:
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO outbox (turn_id, source, agent_name, text, done) VALUES (?,?,?,?,1)",
                (turn_id, LIVE + key, agent_name, ""),
            )
            if cursor.rowcount:
                await db.execute(
                    "INSERT INTO outbox_posts (outbox_id, part, ts) VALUES (?,?,?)", (cursor.lastrowid, 0, ts)
                )

    async def live_ts(self, turn_id: int, key: str) -> str | None:
        async with self.db.execute(
            "SELECT p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=? AND o.source=?",
            (turn_id, LIVE + key),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]:
        """(agent name, ts) of everything posted for the turn, in order (a draft counts as its reply)."""
        async with self.db.execute(
            "SELECT o.agent_name, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=?"
            " AND o.source NOT LIKE 'live:%' ORDER BY o.id, p.part",
            (turn_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [(r[0], r[1]) for r in rows]

    async def conversation(self, thread: ThreadKey, agent_id: str) -> str | None:
        async with self.db.execute(
            "SELECT conversation_id FROM conversations WHERE team_id=? AND channel_id=? AND thread_ts=? AND agent_id=?",
            (*thread, agent_id),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def put_conversation(
        self, thread: ThreadKey, agent_id: str, conversation_id: str, replacing: str | None = None
    ) -> str:
        async with self._write() as db:
            await db.execute(
                "UPDATE conversations SET conversation_id=? WHERE team_id=? AND channel_id=? AND thread_ts=?"
                " AND agent_id=? AND conversation_id=?",
                (conversation_id, *thread, agent_id, replacing),
            )
            await db.execute(
                "INSERT OR IGNORE INTO conversations (team_id, channel_id, thread_ts, agent_id, conversation_id,"
                " created_at) VALUES (?,?,?,?,?,?)",
                (*thread, agent_id, conversation_id, _now()),
            )
        return await self.conversation(thread, agent_id) or conversation_id

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    def _live_lease(self, key: tuple[str, str]) -> str | None:
        held = self._leases.get(key)
        return held[0] if held is not None and held[1] > time.monotonic() else None

    async def claim_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        key = (team_id, channel_id)
        if self._live_lease(key) not in (None, owner):
            return False
        self._leases[key] = (owner, time.monotonic() + seconds)
        return True

    async def renew_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        key = (team_id, channel_id)
        held = self._leases.get(key)
        if held is None or held[0] != owner:
            return False
        self._leases[key] = (owner, time.monotonic() + seconds)
        return True

    async def release_binding(self, team_id: str, channel_id: str, owner: str) -> None:
        held = self._leases.get((team_id, channel_id))
        if held is not None and held[0] == owner:
            del self._leases[(team_id, channel_id)]

    async def orphaned_bindings(self) -> list[tuple[str, str]]:
        async with self.db.execute(
            "SELECT team_id, channel_id FROM turns WHERE status IN ('received', 'running')"
            " GROUP BY team_id, channel_id ORDER BY MIN(id)"
        ) as cursor:
            rows = await cursor.fetchall()
        keys = [(str(r[0]), str(r[1])) for r in rows]
        return [key for key in keys if self._live_lease(key) is None]

    @asynccontextmanager
    async def agent_lock(self, agent_ids: Sequence[str]) -> AsyncIterator[None]:
        """One process: the Letta client's in-process locks already keep each agent to one send."""
        yield
