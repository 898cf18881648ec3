"""Queries written once with `$n` placeholders for both backends: the SQLite side turns them into `?n` and
writes one at a time; the Postgres side sends them as they are. For the side tables (installations, approvals,
feedback, attachments) whose few queries need no backend of their own."""

from __future__ import annotations

import re
from typing import Any

from bridge.store.base import Store


class Sql:
    """The few queries the OAuth, approval, feedback and attachment rows need, on either backend's connection
    (SQLite: one write at a time)."""

    def __init__(self, store: Store) -> None:
        self._store: Any = store
        self._sqlite = hasattr(store, "_write")

    def _text(self, query: str) -> str:
        return re.sub(r"\$(\d+)", r"?\1", query) if self._sqlite else query

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if self._sqlite:
            async with self._store.db.execute(self._text(query), args) as cursor:
                return [dict(row) for row in await cursor.fetchall()]
        return [dict(row) for row in await self._store.pool.fetch(query, *args)]

    async def write_returning(self, query: str, *args: Any) -> list[dict[str, Any]]:
        """A write with a RETURNING clause: the rows it returns, read in the write's own transaction."""
        if self._sqlite:
            async with self._store._write() as db:
                cursor = await db.execute(self._text(query), args)
                return [dict(row) for row in await cursor.fetchall()]
        return [dict(row) for row in await self._store.pool.fetch(query, *args)]

    async def execute(self, query: str, *args: Any) -> int:
        """Rows changed."""
        if self._sqlite:
            async with self._store._write() as db:
                cursor = await db.execute(self._text(query), args)
                return int(cursor.rowcount)
        status = await self._store.pool.execute(query, *args)
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
