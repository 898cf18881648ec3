"""Seen request signatures for the single-process SQLite store: checked in memory, written with the request's
own write.

A replay check that writes the signature in a transaction of its own costs every request a trip to the writer's
thread before Bolt sees it. One process holds a SQLite database (`<db>.lock`), so the signatures it has seen are
all in memory (the unexpired ones loaded on open, each new one added as it is checked): a replay is refused
without a trip, and a new signature only waits to be written. It is written in the same transaction as the
request's first write (a mention's accepted turn) or, for a request that writes nothing, before its answer goes
out (`Store.record_signatures`): a request answered 200 has its signature in the database, so a replay after a
restart is refused too.
"""

from __future__ import annotations

import sqlite3
import time

PRUNE_EVERY = 1000  # new signatures between two sweeps of the expired ones out of memory


class SeenSignatures:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}  # signature -> when its window ends (epoch seconds)
        self._unwritten: list[tuple[str, float]] = []
        self._added = 0

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

    def take(self) -> list[tuple[str, float]]:
        """The signatures to write with the next transaction; `give_back` them if it fails."""
        taken, self._unwritten = self._unwritten, []
        return taken

    def give_back(self, taken: list[tuple[str, float]]) -> None:
        self._unwritten[:0] = taken

    @staticmethod
    def write(conn: sqlite3.Connection, taken: list[tuple[str, float]]) -> None:
        """Inside a write transaction: the signatures, and the expired rows out."""
        if not taken:
            return
        conn.execute("DELETE FROM seen_signatures WHERE expires_at < ?", (time.time(),))
        conn.executemany("INSERT OR IGNORE INTO seen_signatures (signature, expires_at) VALUES (?,?)", taken)
