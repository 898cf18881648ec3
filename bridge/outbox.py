"""What a turn owes its thread, as the store's outbox rows: each written before it is posted, each part recorded
as it is posted, so a restarted bridge posts what is missing and never a part twice.

A turn that starts fresh in this process (accepted here, never marked running: it owes nothing from before)
also keeps its rows in memory as it writes them, so finding what it still owes needs no read of the database.
A resumed turn reads them back, as a restart must. So does a fresh one as soon as memory may differ from the
database: a write that did not return (cancelled at the turn's deadline, or failed: it may still have been
committed), or a row that was there already (another process wrote it, then died before marking the turn
running).
"""

from __future__ import annotations

from dataclasses import replace

from bridge.store.base import OutboxItem, Store


class TurnOutbox:
    def __init__(self, store: Store, turn_id: int, fresh: bool) -> None:
        self._store = store
        self._turn_id = turn_id
        self._kept: dict[int, OutboxItem] | None = {} if fresh else None  # by id, so in the store's order
        # A part's post began and did not return (the turn's deadline, a stop): it may be in Slack unrecorded,
        # so its next post reads the thread first, as a resumed turn's does.
        self.in_doubt = False
        self.refused = 0  # parts Slack refused for what they held, each replaced by a notice: the turn is partial

    async def add(self, source: str, agent_name: str | None, text: str) -> None:
        """Owe the thread a message; the same source twice is owed once."""
        try:
            item_id = await self._store.outbox_add(self._turn_id, source, agent_name, text)
        except BaseException:
            self._kept = None
            raise
        if self._kept is None:
            return
        if item_id is None:
            self._kept = None  # the row was there already: only the database knows what of it was posted
        else:
            self._kept[item_id] = OutboxItem(item_id, source, agent_name, text, frozenset())

    async def pending(self) -> list[OutboxItem]:
        """What is still owed, oldest first, with the parts of each already posted."""
        if self._kept is None:
            return await self._store.outbox_pending(self._turn_id)
        return list(self._kept.values())

    async def thread_posts(self) -> set[str]:
        """The ts of the posts recorded in this turn's thread, by any turn: none is a post still owed."""
        return await self._store.thread_posts(self._turn_id)

    async def posted(self, item: OutboxItem, part: int, ts: str, last: bool) -> None:
        try:
            await self._store.outbox_posted(item.id, part, ts, last=last)
        except BaseException:
            self._kept = None
            raise
        if self._kept is None or item.id not in self._kept:
            return
        if last:
            del self._kept[item.id]
        else:
            self._kept[item.id] = replace(self._kept[item.id], posted=self._kept[item.id].posted | {part})
