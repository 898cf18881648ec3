"""The `queue_notices` table (schema v19): the message of each waiting thread's queue notice (notices.py), so that
a restart goes on keeping it true (edited as the queue moves, saying when its mention will not be answered) rather
than leaving it to promise for good.

One row per thread: written when the notice is posted, its count as it is edited, deleted once the notice said its
last word. A row a crash left is taken up by the next start, and retention deletes any older than
FINISHED_TURNS_DAYS. One implementation serves both backends (`sql.Sql`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.store.base import Store, ThreadKey
from bridge.store.sql import Sql

_TABLE = """
    CREATE TABLE IF NOT EXISTS queue_notices (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, thread_ts TEXT NOT NULL,
        ts TEXT NOT NULL, place TEXT NOT NULL, shown INTEGER NOT NULL, posted_at {real} NOT NULL,
        PRIMARY KEY (team_id, channel_id, thread_ts)
    );
"""
SQLITE_V19 = _TABLE.format(real="REAL")
POSTGRES_V19 = _TABLE.format(real="DOUBLE PRECISION")

_KEY = "team_id=$1 AND channel_id=$2 AND thread_ts=$3"
_PUT = (
    "INSERT INTO queue_notices (team_id, channel_id, thread_ts, ts, place, shown, posted_at)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (team_id, channel_id, thread_ts)"
    " DO UPDATE SET ts=excluded.ts, place=excluded.place, shown=excluded.shown, posted_at=excluded.posted_at"
)
_SHOWN = f"UPDATE queue_notices SET shown=$5 WHERE {_KEY} AND ts=$4"  # noqa: S608 - constants only
_DROP = f"DELETE FROM queue_notices WHERE {_KEY} AND ts=$4"  # noqa: S608 - constants only
_ONE = f"SELECT 1 FROM queue_notices WHERE {_KEY}"  # noqa: S608 - constants only
_ALL = "SELECT team_id, channel_id, thread_ts, ts, place, shown FROM queue_notices ORDER BY posted_at LIMIT $1"
_OLD = "DELETE FROM queue_notices WHERE posted_at < $1"


@dataclass(frozen=True)
class NoticeRow:
    thread: ThreadKey
    ts: str
    where: str  # "channel" or "thread": where the thread waits
    shown: int  # the count the notice says


class NoticeRows:
    def __init__(self, store: Store) -> None:
        self._sql = Sql(store)

    async def put(self, row: NoticeRow) -> None:
        """The thread's notice, just posted (replacing any row of an earlier one of the thread)."""
        await self._sql.execute(_PUT, *row.thread, row.ts, row.where, row.shown, time.time())

    async def shown(self, row: NoticeRow) -> None:
        """The notice was edited to say `row.shown`."""
        await self._sql.execute(_SHOWN, *row.thread, row.ts, row.shown)

    async def drop(self, thread: ThreadKey, ts: str) -> None:
        """The notice said its last word: nothing more to keep true."""
        await self._sql.execute(_DROP, *thread, ts)

    async def showing(self, thread: ThreadKey) -> bool:
        """Whether a process shows the thread a notice (one being posted is not yet known)."""
        return bool(await self._sql.fetch(_ONE, *thread))

    async def all(self, limit: int = 1000) -> list[NoticeRow]:
        """The notices left by earlier processes, oldest first."""
        rows = await self._sql.fetch(_ALL, limit)
        return [
            NoticeRow((r["team_id"], r["channel_id"], r["thread_ts"]), r["ts"], r["place"], int(r["shown"]))
            for r in rows
        ]

    async def prune(self, days: float) -> int:
        """Delete rows of notices posted more than `days` ago (left by a crash, or by a thread nothing moved)."""
        return await self._sql.execute(_OLD, time.time() - days * 86400.0)
