"""Seen request signatures for the single-process SQLite store: checked in memory, written with the request's
own write.

A replay check that writes the signature in a transaction of its own costs every request a trip to the writer's
thread before Bolt sees it. One process holds a SQLite database (`<db>.lock`), so the signatures it has seen are
all in memory (the unexpired ones loaded on open, each new one added as it is checked): a replay is refused
without a trip, and a new signature only waits to be written. It is written in the same transaction as the
request's first write (a mention's accepted turn) or, for a request that writes nothing, before its answer goes
out (`Store.record_signatures`): a request answered 200 has its signature in the database, so a replay after a
restart is refused too. Another request's write may carry this one's signature: `record_signatures` then waits
for that write too, and fails if it failed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field

from bridge.store.base import StoreError

PRUNE_EVERY = 1000  # new signatures between two sweeps of the expired ones out of memory


@dataclass(eq=False)  # each batch is itself (kept in a set while it is written)
class Batch:
    """Signatures taken for one write transaction, and how it went."""

    signatures: list[tuple[str, float]]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ok: bool = False


class SignatureWriteFailed(StoreError):
    """A write carrying checked signatures failed: the requests they belong to must not be answered 200."""


class SeenSignatures:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}  # signature -> when its window ends (epoch seconds)
        self._unwritten: list[tuple[str, float]] = []
        self._added = 0
        self._writing: set[Batch] = set()

    def load(self, conn: sqlite3.Connection) -> None:
        """On open, in the writer's thread: the expired rows go, the others are remembered."""
        conn.execute("DELETE FROM seen_signatures WHERE expires_at < ?", (time.time(),))
        self._seen = {str(sig): float(until) for sig, until in conn.execute(
            "SELECT signature, expires_at FROM seen_signatures"
        )}

    def first(self, signature: str, expires_at: float) -> bool:
        now = time.time()
        until = self._seen.get(signature)
        if until is not None and until >= now:
            return False
        self._seen[signature] = expires_at
        self._unwritten.append((signature, expires_at))
        self._added += 1
        if self._added % PRUNE_EVERY == 0:
            self._seen = {sig: end for sig, end in self._seen.items() if end >= now}
        return True

    def take(self) -> Batch:
        """The signatures to write with the next transaction; `finish` it when that ends."""
        batch = Batch(self._unwritten)
        self._unwritten = []
        if batch.signatures:
            self._writing.add(batch)
        return batch

    def finish(self, batch: Batch, ok: bool) -> None:
        """A failed batch's signatures wait for the next write again."""
        if not ok:
            self._unwritten[:0] = batch.signatures
        batch.ok = ok
        batch.done.set()
        self._writing.discard(batch)

    def writing(self) -> list[Batch]:
        return list(self._writing)

    @staticmethod
    async def written(batches: list[Batch]) -> None:
        for batch in batches:
            await batch.done.wait()
            if not batch.ok:
                raise SignatureWriteFailed("a write carrying request signatures failed")

    @staticmethod
    def write(conn: sqlite3.Connection, taken: list[tuple[str, float]]) -> None:
        """Inside a write transaction: the signatures, and the expired rows out."""
        if not taken:
            return
        conn.execute("DELETE FROM seen_signatures WHERE expires_at < ?", (time.time(),))
        conn.executemany("INSERT OR IGNORE INTO seen_signatures (signature, expires_at) VALUES (?,?)", taken)
