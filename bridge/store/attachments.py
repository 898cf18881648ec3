"""Schema v10: a turn's shared files (`turns.files`, written with the turn before Slack is acknowledged) and what
they became for the agents (`turn_attachments`: the images' bytes, the text that describes or inlines the files),
written once before the turn's first Letta send and deleted when the turn ends.

Why keep the bytes rather than fetch again on resume: every agent of a turn, and a send made again after a
restart, must get the same content (docs/guarantees.md), and a second download can fail, or find the file changed
or deleted, where the first one worked. One implementation serves both backends (`installations.Sql`).
"""

from __future__ import annotations

from bridge.store.base import Store
from bridge.store.sql import Sql

_V10 = """
    ALTER TABLE turns ADD COLUMN files TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE turn_attachments (turn_id BIGINT PRIMARY KEY, body TEXT NOT NULL);
"""
SQLITE_V10 = _V10
POSTGRES_V10 = _V10

_GET = "SELECT body FROM turn_attachments WHERE turn_id=$1"
_PUT = "INSERT INTO turn_attachments (turn_id, body) VALUES ($1,$2) ON CONFLICT (turn_id) DO NOTHING"
_DROP = "DELETE FROM turn_attachments WHERE turn_id=$1"


class AttachmentStore:
    def __init__(self, store: Store) -> None:
        self._sql = Sql(store)

    async def keep(self, turn_id: int, body: str) -> str:
        """Keep the turn's prepared attachments, unless some run of the turn kept them first: the body kept."""
        await self._sql.execute(_PUT, turn_id, body)
        return await self.kept(turn_id) or body

    async def kept(self, turn_id: int) -> str | None:
        rows = await self._sql.fetch(_GET, turn_id)
        return str(rows[0]["body"]) if rows else None

    async def drop(self, turn_id: int) -> None:
        await self._sql.execute(_DROP, turn_id)
