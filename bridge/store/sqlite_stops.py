"""Which running turns the serving SQLite process knows are not stopped, so `turn_stopped_by` (asked before each
post and each next agent) needs no read for them.

SQLite means one process, which writes every stop: a turn taken here and never since made stopping or stopped is
known not stopped. A TEMP trigger on the writer's connection (so only this process's writes fire it) notes each
turn a write makes stopping or stopped, on the writer's thread while that write runs: before any read can see the
stop, so a check never answers from memory for a turn whose stop another read could already show.
"""

from __future__ import annotations

import sqlite3

TAKEN_MOST = 100_000  # turns remembered: a bound on memory, not on correctness (a forgotten turn is read)


class StopWatch:
    def __init__(self) -> None:
        self._taken: set[int] = set()
        self._stopped: set[int] = set()  # added to on the writer's thread (set.add is atomic), never replaced

    def watch(self, conn: sqlite3.Connection) -> None:
        """On the writer's connection, on its thread: the trigger noting each turn made stopping or stopped."""
        conn.create_function("bridge_stop_seen", 1, self._stopped.add)
        conn.execute(
            "CREATE TEMP TRIGGER IF NOT EXISTS turn_stop_seen AFTER UPDATE OF status ON main.turns"
            " WHEN NEW.status IN ('stopping', 'stopped') BEGIN SELECT bridge_stop_seen(NEW.id); END"
        )

    def taken(self, turn_id: int) -> None:
        """The turn was taken to run here (its status running, not stopping, as of that write's commit)."""
        if len(self._taken) + len(self._stopped) >= TAKEN_MOST:  # turns that ended some other way, stops of
            self._taken.clear()  # queued turns: forgotten together, and read from the file again
            self._stopped.clear()
        self._taken.add(turn_id)

    def ended(self, turn_id: int) -> None:
        self._taken.discard(turn_id)
        self._stopped.discard(turn_id)

    def running(self, turn_id: int) -> bool:
        """Known running and not stopped: taken here, and no stop written for it since."""
        return turn_id in self._taken and turn_id not in self._stopped
