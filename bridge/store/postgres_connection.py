"""The Postgres store's connections: the pools (turns' bookkeeping, acknowledgements, agent locks), migrations
under an advisory lock, and the DATABASE_URL options asyncpg is given. The tables are used in
`postgres_journal.py` (a turn's steps, outbox and transcript) and `postgres.py` (the rest)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from bridge.store.base import StoreError
from bridge.store.database_url import DatabaseUrlError, display_url
from bridge.store.postgres_locks import PING_SECONDS, SendRecord, advisory, bounded
from bridge.store.schema import POSTGRES_MIGRATIONS as MIGRATIONS
from bridge.store.schema import newer_schema

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key for migrations; agent locks hash into the rest of the bigint space.
MIGRATION_LOCK = 0x6C657474_61000001
RENEWAL_CONNECTIONS = 2  # Slack token renewals under way at once (each one workspace's, for one answer of Slack's)
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
APP_NAME = "letta-slack-bridge"
# An agent lock waited for this long is looked at: a holder whose process's heartbeat ran out has its session ended.
LOCK_LOOK_EVERY = 2.0
# The heartbeat's length when the store is not told the lease's (TURN_LEASE_SECONDS): renewed every third of it.
ALIVE_SECONDS = 30.0
# A granted agent lock (one bigint key: classid, objid and objsubid 1) held by a session of a process whose heartbeat
# ran out, or that never had one while its name says it should: ended, which frees its locks. Only in this database,
# and only a session of this deployment (its name carries the schema's `deployment`): another bridge sharing the
# server, or the database in a schema of its own, keeps its heartbeats where this one cannot see them.
_END_DEAD_HOLDERS = (
    "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 AND a.application_name LIKE $2"
    " AND NOT EXISTS (SELECT 1 FROM bridge_processes p"
    " WHERE p.owner = substr(a.application_name, $3) AND p.expires_at >= now())"
)
ACCEPT_CONNECTIONS = 1
# Seconds to open a connection when DATABASE_URL has no connect_timeout: asyncpg's own 60 s outlasts a platform's
# boot timeout (Heroku's is 60 s), so a start would be killed before it said the database does not answer.
CONNECT_TIMEOUT = 10.0
# Seconds the pools get, in all, to close at a stop before their connections are ended without waiting: with the
# turns' grace (SHUTDOWN_GRACE_SECONDS, 20 s) and their cut-short clean-up, the stop fits a platform's 30 s.
CLOSE_SECONDS = 5.0


async def _deployment(pool: Pool) -> str:
    """This bridge's tables, named shortly: a hash of the database and the schema they live in (63 characters are
    all an application_name holds)."""
    where = await pool.fetchval("SELECT current_database() || '.' || current_schema()")
    return hashlib.sha256(str(where).encode()).hexdigest()[:8]


def connect_options(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg gets and its keyword options: `sslmode` (as PaaS add-ons set it) becomes `ssl=`,
    `connect_timeout` becomes `timeout=` (CONNECT_TIMEOUT without it), and libpq-only options are dropped."""
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
                seconds = float(value)
            except ValueError:
                raise DatabaseUrlError(f"DATABASE_URL has connect_timeout={value}, which is not a number") from None
            options["timeout"] = seconds if seconds > 0 else None  # libpq: 0 (or less) waits as long as it takes
        elif key not in _CLIENT_ONLY:
            query.append((key, value))
    options.setdefault("timeout", CONNECT_TIMEOUT)
    return urlunsplit(parts._replace(query=urlencode(query))), options


def agent_lock_key(agent_id: str) -> int:
    """A stable signed 64-bit key per agent for pg_advisory_lock."""
    digest = hashlib.blake2b(f"letta-agent:{agent_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def transcript_lock_key(team_id: str, channel_id: str) -> int:
    """The pg_advisory_xact_lock key under which a binding's transcript gets its next numbers."""
    digest = hashlib.blake2b(f"letta-transcript:{team_id}:{channel_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def clean(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL; Slack and Letta text almost never does."""
    return text.replace("\x00", "\ufffd")


def as_json(value: Any) -> str:
    return clean(json.dumps(value))


if TYPE_CHECKING:  # asyncpg's classes are generic only in its stubs
    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]


class PostgresConnection:
    """The pools; the store's methods are its subclasses'."""

    def __init__(
        self,
        url: str,
        pool_size: int = 5,
        lock_connections: int = 16,
        migrate: bool = True,
        alive_seconds: float = ALIVE_SECONDS,
        serving: bool = True,
    ) -> None:
        self.url = url
        self._migrates = migrate  # False for `check`, which creates nothing
        # Only a serving process (serve, socket) takes agent locks, so only it keeps a heartbeat: a one-shot command
        # (`channels list`) writes nothing at open, and works on a read-only database.
        self._serving = serving
        self._dsn, self._options = connect_options(url)
        self._pool_size = pool_size
        self._lock_connections = lock_connections
        self._pool: Pool | None = None
        self._locks: Pool | None = None
        # Token renewals (OAuth mode) hold a lock of their own while Slack answers: never a connection of the agent
        # locks' pool, which a send whose growing reply needs the renewed token may be holding.
        self._renewals: Pool | None = None
        # Accepting an event (Slack waits for its ack) has connections of its own: it never queues for the
        # pool behind the turns' bookkeeping.
        self._accepts: Pool | None = None
        # This process on its agent locks' sessions and in `bridge_processes`, renewed while it runs: a process
        # frozen, or whose host vanished without closing its connections, keeps its sessions open (PostgreSQL may
        # notice hours later), and another process takes its agent locks once its heartbeat has run out.
        self.process = uuid.uuid4().hex[:16]
        self._alive_seconds = alive_seconds
        self._beating: asyncio.Task[None] | None = None
        self._sends = SendRecord(self.process, lambda: self.pool, LOCK_LOOK_EVERY)
        self._deployment = ""

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    async def _create_pool(self, min_size: int, max_size: int, **settings: str) -> Pool:
        return await asyncpg.create_pool(
            self._dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": APP_NAME, **settings},
            **self._options,
        )

    async def open(self) -> None:
        where = display_url(self.url)
        try:
            self._pool = await self._create_pool(1, self._pool_size)
            self._renewals = await self._create_pool(0, RENEWAL_CONNECTIONS)
            beating = False
            if self._migrates:
                await self._migrate()
            if self._migrates and self._serving:
                beating = await self._first_beat()  # before any agent lock: none of this process's is taken from it
            # Agent locks hold a connection for a whole Letta send: their own pool, filled on demand, waiting
            # LOCK_LOOK_EVERY at most before a look at who holds the lock, and named after this process where it
            # keeps a heartbeat (one opened for `check` takes no lock and keeps none: its name says so). A
            # statement_timeout the database or role sets would cancel that wait as an error: none applies here.
            self._deployment = await _deployment(self.pool)
            name = f"{APP_NAME}:{self._deployment}:{self.process}" if beating else APP_NAME
            self._locks = await self._create_pool(
                0,
                self._lock_connections,
                application_name=name,
                lock_timeout=str(int(LOCK_LOOK_EVERY * 1000)),
                statement_timeout="0",
            )
            self._accepts = await self._create_pool(1, ACCEPT_CONNECTIONS)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ssl.SSLError, TimeoutError) as exc:
            await self.close()
            raise StoreError(f"cannot open the database {where}: {_reason(exc, _insists_on_tls(self.url))}") from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every pool within CLOSE_SECONDS in all: a pool's close waits for each connection to be released
        and for the server's goodbye, which a connection stuck in a query, or a database that stopped answering,
        never gives; what is left then is ended (`terminate`), so that a SIGTERM's stop ends."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
            self._beating = None
        pools = {"accepts": self._accepts, "renewals": self._renewals, "locks": self._locks, "turns": self._pool}
        self._pool = self._locks = self._renewals = self._accepts = None
        deadline = asyncio.get_running_loop().time() + CLOSE_SECONDS
        await asyncio.gather(*(_close_pool(name, pool, deadline) for name, pool in pools.items() if pool is not None))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def _migrate(self) -> None:
        """Migrate a database older than this bridge; one at the latest schema is only read: a role that may not
        create tables (the schema's owner runs the migrations), or a read-only database, opens it as well."""
        current = await self.schema_version()
        if current > max(MIGRATIONS):
            raise newer_schema(current, display_url(self.url))
        if current == max(MIGRATIONS):
            return
        async with self._tx() as db:
            # Taken first: a second process starting now waits here, then finds nothing left to do.
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > max(MIGRATIONS):  # rolled back with the transaction: a newer bridge's tables stay as they are
                raise newer_schema(current, display_url(self.url))
            for version in sorted(MIGRATIONS):
                if version > current:
                    await db.execute(MIGRATIONS[version])
                    await db.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    async def schema_version(self) -> int:
        """0 for a database the bridge has not created its tables in yet (opened without migrating)."""
        if await self.pool.fetchval("SELECT to_regclass('schema_version')") is None:
            return 0
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def _beat(self, tidy: bool = False) -> None:
        """One renewal, with the deletions it owes (and, `tidy`, those of processes long gone), given up and its
        connection dropped after a sixth of the heartbeat: the next one, a third later, is in time on another."""
        async with bounded(self.pool, self._alive_seconds / 6) as conn:
            await conn.execute(
                "INSERT INTO bridge_processes (owner, expires_at) VALUES ($1, now() + make_interval(secs => $2))"
                " ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
                self.process,
                self._alive_seconds,
            )
            await self._sends.sweep(conn)
            if tidy:
                await conn.execute("DELETE FROM bridge_processes WHERE expires_at < now() - interval '1 day'")

    async def _first_beat(self) -> bool:
        """Start the heartbeat; False on a schema without its table (one a test pinned to an older version)."""
        try:
            await self._beat()
        except asyncpg.UndefinedTableError:
            return False
        self._beating = asyncio.create_task(self._beat_forever())
        return True

    async def _beat_forever(self) -> None:
        """Renew the heartbeat every third of its length; once in a while, clear those of processes long gone."""
        beats = 0
        while True:
            await asyncio.sleep(self._alive_seconds / 3)
            try:
                beats += 1
                await self._beat(tidy=beats % 100 == 0)
            except Exception as exc:
                log.warning("could not renew this process's heartbeat error=%s", type(exc).__name__)

    async def _end_dead_holders(self, key: int) -> None:
        """Free an agent lock held by a process whose heartbeat ran out: its session is ended."""
        prefix = f"{APP_NAME}:{self._deployment}:"
        try:
            ended = await self.pool.fetch(_END_DEAD_HOLDERS, key, prefix + "%", len(prefix) + 1)
        except asyncpg.PostgresError as exc:  # not allowed to end it, say: the wait goes on, as before heartbeats
            log.warning("could not look at an agent lock's holder error=%s", type(exc).__name__)
            return
        if ended:
            log.warning("ended the agent lock session of a process whose heartbeat ran out count=%d", len(ended))

    async def ping(self) -> None:
        """The server answers, and takes writes: a standby after a failover, or a database its plan set read-only
        (a quota reached), answers every read while refusing each turn's records; Heroku takes the rights to
        insert and update away from a database over its plan's storage, which the same reads never meet."""
        async with bounded(self.pool, PING_SECONDS) as conn:  # its caller's timeout alone would wait on a silent one
            row = await conn.fetchrow(WRITABLE)
        if row is None or row["read_only"]:
            raise StoreError("the database is read-only (a standby, or set so by its plan): nothing can be recorded")
        if not row["may_write"]:
            raise StoreError(
                "the database refuses the bridge's user the right to write its tables (a plan over its storage "
                "limit takes it away): nothing can be recorded"
            )

    @staticmethod
    async def _top_seq(db: Conn | Pool, team_id: str, channel_id: str) -> int:
        return int(
            await db.fetchval(
                "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=$1 AND channel_id=$2", team_id, channel_id
            )
        )

    @asynccontextmanager
    async def agent_lock(self, agent_ids: Sequence[str]) -> AsyncIterator[set[str]]:
        """Session advisory locks, in a fixed order so that two group sends sharing agents cannot deadlock.
        A process that dies loses its connection, and PostgreSQL frees its locks with it, not its send at Letta:
        yields the ids whose send record such a process left."""
        by_key = {agent_lock_key(agent_id): agent_id for agent_id in agent_ids}
        sends = self._sends if self._beating is not None else None  # recorded where this process has a heartbeat
        inherited: set[int] = set()
        async with advisory(self._locks, sorted(by_key), self._end_dead_holders, sends, uuid.uuid4().hex, inherited):
            yield {by_key[key] for key in inherited}

    def token_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """A workspace's token renewal, one process at a time, on connections no agent lock holds."""
        return advisory(self._renewals, [agent_lock_key(name)])  # the key earlier versions took as an agent lock


# What every accepted mention writes (the signature, the event id, the turn), each checked for its rights.
WRITABLE = (
    "SELECT current_setting('transaction_read_only') = 'on' AS read_only,"
    " has_table_privilege('seen_signatures', 'INSERT') AND has_table_privilege('seen_signatures', 'UPDATE')"
    " AND has_table_privilege('seen_events', 'INSERT') AND has_table_privilege('turns', 'INSERT')"
    " AND has_table_privilege('turns', 'UPDATE') AS may_write"
)


async def _close_pool(name: str, pool: Pool, deadline: float) -> None:
    """One pool closed by `deadline`, else its connections ended without waiting: the server rolls back what they
    had under way. Never raises: the stop goes on, and ends as a stop (`serve` exits 0)."""
    busy = pool.get_size() - pool.get_idle_size()
    try:
        async with asyncio.timeout_at(deadline):
            await pool.close()
    except TimeoutError:
        pool.terminate()
        log.warning(
            "the database's connections did not close within %.0f s; ended them without waiting"
            " (PostgreSQL rolls back what they had under way) pool=%s in_use=%d",
            CLOSE_SECONDS,
            name,
            busy,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pool.terminate()  # asyncpg's close has ended them already; said once, the stop goes on
        log.warning("the database's connections did not close cleanly; ended them pool=%s error=%s", name, _reason(exc))


def _insists_on_tls(url: str) -> bool:
    """The URL's sslmode will not go on without TLS (asyncpg's default, prefer, would)."""
    modes = [value for key, value in parse_qsl(urlsplit(url).query) if key == "sslmode"] or [""]
    return modes[-1] in ("require", "verify-ca", "verify-full")


def _reason(exc: BaseException, tls_insisted: bool = False) -> str:
    """Why a connection failed, in a few words and never with the password."""
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return "the user name or password was refused"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        # PostgreSQL names the one it looked for: a URL without one gets the user's name, which it does not show.
        said = str(exc).splitlines()[0] if str(exc) else "that database does not exist"
        return f"{said} (the URL names it after the port: postgres://user:password@host:5432/<database>)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running there?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "rejected SSL upgrade" in text and tls_insisted:  # asyncpg's words when the server does not offer TLS
        return (
            f"{text}: the server does not offer TLS, which the URL's sslmode insists on; turn TLS on at the server, "
            "or write sslmode=prefer (TLS when offered)"
        )
    if "rejected SSL upgrade" in text:  # prefer goes on without TLS: what answered did not answer as PostgreSQL
        return f"{text}: what answers at that host and port is not PostgreSQL; check them in the URL"
    return text[:200]
