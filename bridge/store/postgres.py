"""The shared store for production on a PaaS: PostgreSQL through asyncpg with a connection pool.

The same tables and semantics as the SQLite store, so that several `web` processes share one database:
unique constraints drop a retried event whichever process it reaches; a binding's turns are run by the process
holding its lease (`binding_leases`, taken with an upsert that only wins when the lease is free, expired or
already the caller's); and each Letta send holds a session advisory lock per agent on a connection of its own,
which PostgreSQL releases by itself when a process dies. Migrations run under a transaction-level advisory lock,
so two processes starting at once migrate once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from bridge.domain import AgentFailure, AgentReply, Binding, RunnerChoice, StepRecord, Turn
from bridge.store.base import (
    LIVE,
    UNFINISHED,
    DatabaseUrlError,
    HistoryEntry,
    OutboxItem,
    PendingTurn,
    StoreError,
    ThreadKey,
    binding_columns,
    binding_from_row,
    display_url,
    files_json,
    pending_from_row,
    step_outcome,
)
from bridge.store.conversations import postgres_get, postgres_put
from bridge.store.schema import POSTGRES_MIGRATIONS as MIGRATIONS

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy


# pg_advisory_xact_lock key for migrations; agent locks hash into the rest of the bigint space.
MIGRATION_LOCK = 0x6C657474_61000001
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq connection options that PaaS URLs carry and asyncpg would otherwise send as server settings.
_CLIENT_ONLY = frozenset(
    {
        "channel_binding",
        "gssencmode",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "requiressl",
        "sslcompression",
        "sslsni",
        "pgbouncer",
    }
)
UNLOCK_TIMEOUT = 5.0
ACCEPT_CONNECTIONS = 1
# One statement, so one round trip: the event is marked seen and its turn inserted together, or neither.
_ACCEPT = (
    "WITH seen AS (INSERT INTO seen_events (event_id) VALUES ($8) ON CONFLICT DO NOTHING RETURNING 1)"
    " INSERT INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid, event_id, status, files)"
    " SELECT $1,$2,$3,$4,$5,$6,$7,$8,'received',$9 WHERE EXISTS (SELECT 1 FROM seen)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
_ACCEPT_UNSEEN = (
    "INSERT INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid, event_id, status, files)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'received',$9) ON CONFLICT DO NOTHING RETURNING id"
)


def connect_options(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg gets and its keyword options: `sslmode` (as PaaS add-ons set it) becomes `ssl=`,
    `connect_timeout` becomes `timeout=`, and libpq-only options are dropped."""
    parts = urlsplit(url)
    query: list[tuple[str, str]] = []
    options: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "sslmode":
            if value not in SSL_MODES:
                raise DatabaseUrlError(f"DATABASE_URL has sslmode={value}; use one of {', '.join(SSL_MODES)}")
            options["ssl"] = value
        elif key == "connect_timeout":
            try:
                options["timeout"] = float(value)
            except ValueError:
                raise DatabaseUrlError(f"DATABASE_URL has connect_timeout={value}, which is not a number") from None
        elif key not in _CLIENT_ONLY:
            query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query))), options


def agent_lock_key(agent_id: str) -> int:
    """A stable signed 64-bit key per agent for pg_advisory_lock."""
    digest = hashlib.blake2b(f"letta-agent:{agent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _clean(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL; Slack and Letta text almost never does."""
    return text.replace("\x00", "\ufffd")


def _json(value: Any) -> str:
    return _clean(json.dumps(value))


if TYPE_CHECKING:  # asyncpg's classes are generic only in its stubs
    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]


class PostgresStore:
    def __init__(self, url: str, pool_size: int = 5, lock_connections: int = 16) -> None:
        self.url = url
        self._dsn, self._options = connect_options(url)
        self._pool_size = pool_size
        self._lock_connections = lock_connections
        self._pool: Pool | None = None
        self._locks: Pool | None = None
        self._signatures = 0  # signatures recorded by this process: every hundredth clears the expired ones
        # Accepting an event (Slack waits for its ack) has connections of its own: it never queues for the
        # pool behind the turns' bookkeeping.
        self._accepts: Pool | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    async def _create_pool(self, min_size: int, max_size: int) -> Pool:
        return await asyncpg.create_pool(
            self._dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": "letta-slack-bridge"},
            **self._options,
        )

    async def open(self) -> None:
        where = display_url(self.url)
        try:
            self._pool = await self._create_pool(1, self._pool_size)
            # Agent locks hold a connection for a whole Letta send: their own pool, filled on demand.
            self._locks = await self._create_pool(0, self._lock_connections)
            await self._migrate()
            self._accepts = await self._create_pool(1, ACCEPT_CONNECTIONS)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ssl.SSLError, TimeoutError) as exc:
            await self.close()
            raise StoreError(f"cannot open the database {where}: {_reason(exc)}") from None

    async def close(self) -> None:
        for pool in (self._accepts, self._locks, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._locks = self._accepts = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def _migrate(self) -> None:
        async with self._tx() as db:
            # Taken first: a second process starting now waits here, then finds nothing left to do.
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            for version in sorted(MIGRATIONS):
                if version > current:
                    await db.execute(MIGRATIONS[version])
                    await db.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    async def schema_version(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None:
        row = await self.pool.fetchrow("SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2", team_id, channel_id)
        return binding_from_row(row) if row else None

    async def put_binding(self, binding: Binding) -> Binding | None:
        t = binding.target
        agents = [{"id": a.id, "name": a.name} for a in t.agents]
        async with self._tx() as db:
            row = await db.fetchrow(
                "SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2 FOR UPDATE",
                binding.team_id,
                binding.channel_id,
            )
            await db.execute(
                "INSERT INTO bindings (team_id, channel_id, kind, group_id, agents, manager_type, description,"
                " runner, bound_by, bound_at, manager_id, manager_name, max_turns, termination_token)"
                " VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
                " ON CONFLICT (team_id, channel_id) DO UPDATE SET kind=excluded.kind, group_id=excluded.group_id,"
                " agents=excluded.agents, manager_type=excluded.manager_type, description=excluded.description,"
                " runner=excluded.runner, bound_by=excluded.bound_by, bound_at=excluded.bound_at,"
                " manager_id=excluded.manager_id, manager_name=excluded.manager_name, max_turns=excluded.max_turns,"
                " termination_token=excluded.termination_token",
                binding.team_id,
                binding.channel_id,
                t.kind,
                t.group_id,
                _json(agents),
                t.manager_type,
                _clean(t.description),
                binding.runner,
                binding.bound_by,
                binding.bound_at,
                *binding_columns(t),
            )
            top = await self._top_seq(db, binding.team_id, binding.channel_id)
            # An agent new to this channel starts from now: it is not shown replies from before it joined.
            await db.executemany(
                "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                [(binding.team_id, binding.channel_id, agent.id, top) for agent in t.members],
            )
            await self._log(db, binding.team_id, binding.channel_id, "connect", t.ref, binding.runner, binding.bound_by)
        return binding_from_row(row) if row else None

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None:
        async with self._tx() as db:
            row = await db.fetchrow(
                "DELETE FROM bindings WHERE team_id=$1 AND channel_id=$2 RETURNING *", team_id, channel_id
            )
            if row is None:
                return None
            previous = binding_from_row(row)
            await self._log(db, team_id, channel_id, "disconnect", previous.target.ref, previous.runner, actor)
        return previous

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]:
        if team_id is None:
            rows = await self.pool.fetch("SELECT * FROM bindings ORDER BY team_id, channel_id")
        else:
            rows = await self.pool.fetch("SELECT * FROM bindings WHERE team_id=$1 ORDER BY channel_id", team_id)
        return [binding_from_row(row) for row in rows]

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None:
        async with self._tx() as db:
            row = await db.fetchrow(
                "UPDATE bindings SET runner=$3 WHERE team_id=$1 AND channel_id=$2 RETURNING *",
                team_id,
                channel_id,
                runner,
            )
            if row is not None:
                await self._log(db, team_id, channel_id, "runner", binding_from_row(row).target.ref, runner, actor)

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]:
        rows = await self.pool.fetch(
            "SELECT action, target, runner, actor, at FROM binding_history WHERE team_id=$1 AND channel_id=$2"
            " ORDER BY id DESC LIMIT $3",
            team_id,
            channel_id,
            limit,
        )
        return [HistoryEntry(r["action"], r["target"], r["runner"], r["actor"], r["at"]) for r in rows]

    @staticmethod
    async def _log(db: Conn, team_id: str, channel_id: str, action: str, target: str, runner: str, actor: str) -> None:
        await db.execute(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor)"
            " VALUES ($1,$2,$3,$4,$5,$6)",
            team_id,
            channel_id,
            action,
            target,
            runner,
            actor,
        )

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        # Two processes given the same event: the second insert waits on the unique index for the first
        # transaction, then finds the row and does nothing.
        pool = self._accepts or self.pool
        values = (turn.team_id, turn.channel_id, turn.message_ts, turn.thread_ts, turn.user_id, turn.text, otid)
        turn_id = await pool.fetchval(
            _ACCEPT if turn.event_id else _ACCEPT_UNSEEN,
            *(_clean(v) for v in values),
            _clean(turn.event_id),
            _clean(files_json(turn.files)),
        )
        return None if turn_id is None else int(turn_id)

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None:
        await self.pool.execute(
            "UPDATE turns SET status=$2, error=$3, updated_at=now() WHERE id=$1 AND status<>'stopped'",
            turn_id,
            status,
            _clean(error),
        )

    async def stop_turns(self, team_id: str, channel_id: str, thread_ts: str | None, by: str) -> list[int]:
        rows = await self.pool.fetch(
            "UPDATE turns SET status='stopped', error=$4, updated_at=now() WHERE team_id=$1 AND channel_id=$2"
            " AND ($3::text IS NULL OR thread_ts=$3) AND status IN ('received', 'running') RETURNING id",
            team_id,
            channel_id,
            thread_ts,
            _clean(f"stopped by {by}"),
        )
        return sorted(int(r["id"]) for r in rows)

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        row = await self.pool.fetchrow("SELECT status, error FROM turns WHERE id=$1", turn_id)
        if row is None or row["status"] != "stopped":
            return None
        return str(row["error"]).removeprefix("stopped by ")

    async def set_turn_status(self, turn_id: int, status: str) -> bool:
        done = await self.pool.execute(
            "UPDATE turns SET status=$2, updated_at=now() WHERE id=$1 AND status<>'stopped'", turn_id, status
        )
        return str(done) == "UPDATE 1"

    @staticmethod
    def _unfinished(select: str, team_id: str | None, channel_id: str | None) -> tuple[str, list[object]]:
        """`SELECT <select> FROM turns` of the unfinished turns: all of them, or the binding's."""
        query = f"SELECT {select} FROM turns WHERE {UNFINISHED}"  # noqa: S608
        if team_id is None or channel_id is None:
            return query, []
        return query + " AND team_id=$1 AND channel_id=$2", [team_id, channel_id]

    async def unfinished_turns(self, team_id: str | None = None, channel_id: str | None = None) -> list[PendingTurn]:
        query, args = self._unfinished("*", team_id, channel_id)
        return [pending_from_row(row) for row in await self.pool.fetch(query + " ORDER BY id", *args)]

    async def next_turn(
        self, team_id: str, channel_id: str, thread_ts: str | None = None, skip: Collection[int] = ()
    ) -> PendingTurn | None:
        query = f"SELECT * FROM turns WHERE {UNFINISHED} AND team_id=$1 AND channel_id=$2"  # noqa: S608
        args: list[object] = [team_id, channel_id]
        if thread_ts is not None:
            args.append(thread_ts)
            query += f" AND thread_ts=${len(args)}"
        if skip:
            args.append(sorted(skip))
            query += f" AND id <> ALL(${len(args)}::bigint[])"
        row = await self.pool.fetchrow(query + " ORDER BY id LIMIT 1", *args)
        return pending_from_row(row) if row else None

    async def waiting_threads(self, team_id: str, channel_id: str) -> list[str]:
        rows = await self.pool.fetch(
            f"SELECT thread_ts FROM turns WHERE {UNFINISHED} AND team_id=$1 AND channel_id=$2"  # noqa: S608
            " GROUP BY thread_ts ORDER BY MIN(id)",
            team_id,
            channel_id,
        )
        return [str(r[0]) for r in rows]

    async def turns_ahead(self, team_id: str, channel_id: str, thread_ts: str, in_thread: bool) -> int:
        scope = " AND t.thread_ts=$3" if in_thread else ""
        count = await self.pool.fetchval(
            f"SELECT COUNT(*) FROM turns t WHERE t.{UNFINISHED} AND t.team_id=$1 AND t.channel_id=$2{scope}"  # noqa: S608
            f" AND t.id < (SELECT MAX(id) FROM turns WHERE {UNFINISHED} AND team_id=$1 AND channel_id=$2"
            " AND thread_ts=$3)",
            team_id,
            channel_id,
            thread_ts,
        )
        return int(count or 0)

    async def count_unfinished(self, team_id: str | None = None, channel_id: str | None = None) -> int:
        query, args = self._unfinished("COUNT(*)", team_id, channel_id)
        return int(await self.pool.fetchval(query, *args) or 0)

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT true FROM turns WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND status<>'unbound' LIMIT 1",
            team_id,
            channel_id,
            thread_ts,
        )
        return found is not None

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        count = await self.pool.fetchval(
            "SELECT COUNT(*) FROM turns WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND id<$4",
            team_id,
            channel_id,
            thread_ts,
            turn_id,
        )
        return int(count or 0)

    async def record_signatures(self) -> None:
        """Nothing waits: `first_signature` writes each one at once, for every process sharing the database."""

    async def first_signature(self, signature: str, expires_at: float) -> bool:
        # An expired row is taken over by the upsert; the rest of the expired ones go now and then.
        fresh = await self.pool.fetchval(
            "INSERT INTO seen_signatures (signature, expires_at) VALUES ($1,$2) ON CONFLICT (signature) DO UPDATE"
            " SET expires_at = EXCLUDED.expires_at WHERE seen_signatures.expires_at < $3 RETURNING true",
            signature,
            expires_at,
            time.time(),
        )
        self._signatures += 1
        if self._signatures % 100 == 0:
            await self.pool.execute("DELETE FROM seen_signatures WHERE expires_at < $1", time.time())
        return fresh is not None

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        fresh = await self.pool.fetchval(
            "INSERT INTO notices (team_id, channel_id, kind) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING RETURNING true",
            team_id,
            channel_id,
            kind,
        )
        return fresh is not None

    @staticmethod
    async def _top_seq(db: Conn | Pool, team_id: str, channel_id: str) -> int:
        return int(
            await db.fetchval(
                "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=$1 AND channel_id=$2", team_id, channel_id
            )
        )

    async def unseen(
        self, team_id: str, channel_id: str, agent_id: str, from_start: bool = False
    ) -> tuple[list[AgentReply], int]:
        async with self.pool.acquire() as db, db.transaction(isolation="repeatable_read", readonly=True):
            since = await db.fetchval(
                "SELECT seq FROM cursors WHERE team_id=$1 AND channel_id=$2 AND agent_id=$3",
                team_id,
                channel_id,
                agent_id,
            )
            top = await self._top_seq(db, team_id, channel_id)
            rows = await db.fetch(
                "SELECT agent_id, agent_name, text FROM transcript WHERE team_id=$1 AND channel_id=$2"
                " AND seq>$3 AND seq<=$4 AND agent_id<>$5 ORDER BY seq",
                team_id,
                channel_id,
                (0 if from_start else top) if since is None else int(since),
                top,
                agent_id,
            )
        return [AgentReply(r["agent_name"], r["text"], r["agent_id"]) for r in rows], top

    async def get_step(self, turn_id: int, step: str) -> StepRecord | None:
        row = await self.pool.fetchrow(
            "SELECT state, replies::text AS replies, failure::text AS failure, updated_at FROM turn_steps"
            " WHERE turn_id=$1 AND step=$2",
            turn_id,
            step,
        )
        if row is None:
            return None
        replies = tuple(AgentReply(**r) for r in json.loads(row["replies"]))
        failure = AgentFailure(**json.loads(row["failure"])) if row["failure"] else None
        return StepRecord(row["state"], replies, failure, row["updated_at"])

    async def step_sending(self, turn_id: int, step: str) -> None:
        await self.pool.execute(
            "INSERT INTO turn_steps (turn_id, step, state) VALUES ($1,$2,'sending')"
            " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, updated_at=now()",
            turn_id,
            step,
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
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO turn_steps (turn_id, step, state, replies, failure) VALUES ($1,$2,$3,$4::jsonb,$5::jsonb)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, replies=excluded.replies,"
                " failure=excluded.failure, updated_at=now()",
                turn_id,
                step,
                state,
                _clean(encoded),
                _clean(failed) if failed else None,
            )
            if seen is not None:
                team_id, channel_id, agent_id, upto = seen
                for reply in replies:
                    await db.execute(
                        "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text)"
                        " SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5 FROM transcript"
                        " WHERE team_id=$1 AND channel_id=$2",
                        team_id,
                        channel_id,
                        agent_id,
                        reply.agent_name,
                        _clean(reply.text),
                    )
                await db.execute(
                    "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES ($1,$2,$3,$4)"
                    " ON CONFLICT (team_id, channel_id, agent_id)"
                    " DO UPDATE SET seq=GREATEST(cursors.seq, excluded.seq)",
                    team_id,
                    channel_id,
                    agent_id,
                    upto,
                )

    async def outbox_add(self, turn_id: int, source: str, agent_name: str | None, text: str) -> int | None:
        added = await self.pool.fetchval(
            "INSERT INTO outbox (turn_id, source, agent_name, text) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
            " RETURNING id",
            turn_id,
            source,
            agent_name,
            _clean(text),
        )
        return None if added is None else int(added)

    async def outbox_pending(self, turn_id: int) -> list[OutboxItem]:
        rows = await self.pool.fetch(
            "SELECT o.id, o.source, o.agent_name, o.text,"
            " COALESCE(array_agg(p.part) FILTER (WHERE p.part IS NOT NULL), '{}') AS parts"
            " FROM outbox o LEFT JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1 AND NOT o.done"
            " GROUP BY o.id ORDER BY o.id",
            turn_id,
        )
        return [
            OutboxItem(int(r["id"]), r["source"], r["agent_name"], r["text"], frozenset(int(p) for p in r["parts"]))
            for r in rows
        ]

    async def outbox_posted(self, outbox_id: int, part: int, ts: str, last: bool) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,$2,$3)"
                " ON CONFLICT (outbox_id, part) DO UPDATE SET ts=excluded.ts",
                outbox_id,
                part,
                ts,
            )
            if last:
                await db.execute("UPDATE outbox SET done=true WHERE id=$1", outbox_id)

    async def live_started(self, turn_id: int, key: str, agent_name: str, ts: str) -> None:
        async with self._tx() as db:
            outbox_id = await db.fetchval(
                "INSERT INTO outbox (turn_id, source, agent_name, text, done) VALUES ($1,$2,$3,'',true)"
                " ON CONFLICT DO NOTHING RETURNING id",
                turn_id,
                LIVE + key,
                agent_name,
            )
            if outbox_id is not None:
                await db.execute("INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,0,$2)", outbox_id, ts)

    async def live_ts(self, turn_id: int, key: str) -> str | None:
        found = await self.pool.fetchval(
            "SELECT p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1 AND o.source=$2",
            turn_id,
            LIVE + key,
        )
        return None if found is None else str(found)

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]:
        """(agent name, ts) of everything posted for the turn, in order (a draft counts as its reply)."""
        rows = await self.pool.fetch(
            "SELECT o.agent_name, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1"
            " AND o.source NOT LIKE 'live:%' ORDER BY o.id, p.part",
            turn_id,
        )
        return [(r[0], r[1]) for r in rows]

    async def conversation(self, thread: ThreadKey, agent_id: str) -> str | None:
        return await postgres_get(self.pool, (*thread, agent_id))

    async def put_conversation(
        self, thread: ThreadKey, agent_id: str, conversation_id: str, replacing: str | None = None
    ) -> str:
        return await postgres_put(self.pool, (*thread, agent_id), conversation_id, replacing)

    # --- several processes -----------------------------------------------------------------------------
    # Lease times come from the database's clock, so processes on hosts whose clocks differ still agree.

    async def claim_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        won = await self.pool.fetchval(
            "INSERT INTO binding_leases (team_id, channel_id, owner, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
            " ON CONFLICT (team_id, channel_id) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at"
            " WHERE binding_leases.owner=excluded.owner OR binding_leases.expires_at < now()"
            " RETURNING true",
            team_id,
            channel_id,
            owner,
            seconds,
        )
        return won is not None

    async def renew_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        kept = await self.pool.fetchval(
            "UPDATE binding_leases SET expires_at = now() + make_interval(secs => $4)"
            " WHERE team_id=$1 AND channel_id=$2 AND owner=$3 RETURNING true",
            team_id,
            channel_id,
            owner,
            seconds,
        )
        return kept is not None

    async def release_binding(self, team_id: str, channel_id: str, owner: str) -> None:
        await self.pool.execute(
            "DELETE FROM binding_leases WHERE team_id=$1 AND channel_id=$2 AND owner=$3", team_id, channel_id, owner
        )

    async def orphaned_bindings(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            f"SELECT t.team_id, t.channel_id FROM turns t WHERE t.{UNFINISHED}"  # noqa: S608
            " AND NOT EXISTS (SELECT 1 FROM binding_leases l WHERE l.team_id=t.team_id"
            " AND l.channel_id=t.channel_id AND l.expires_at >= now())"
            " GROUP BY t.team_id, t.channel_id ORDER BY MIN(t.id)"
        )
        return [(r[0], r[1]) for r in rows]

    @asynccontextmanager
    async def agent_lock(self, agent_ids: Sequence[str]) -> AsyncIterator[None]:
        """Session advisory locks, in a fixed order so that two group sends sharing agents cannot deadlock.
        A process that dies loses its connection, and PostgreSQL frees its locks with it."""
        if self._locks is None:
            raise StoreError("the store is not open")
        keys = sorted({agent_lock_key(agent_id) for agent_id in agent_ids})
        async with self._locks.acquire() as conn:
            try:
                for key in keys:
                    await conn.execute("SELECT pg_advisory_lock($1)", key)
                yield
            finally:
                # Also frees a lock granted just as a cancelled wait gave up. A database that does not answer
                # gets the connection closed instead: the server frees a session's locks when it ends.
                try:
                    async with asyncio.timeout(UNLOCK_TIMEOUT):
                        await conn.execute("SELECT pg_advisory_unlock_all()")
                except Exception:
                    conn.terminate()


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words and never with the password."""
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return "the user name or password was refused"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "that database does not exist"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running there?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
