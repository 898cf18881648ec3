"""Group commit for SQLite's writer: the write transactions waiting when the writer's thread frees up run
together, in one trip to that thread and under one COMMIT.

Under a burst a turn's bookkeeping is a dozen small writes, and each used to be a transaction of its own: a trip
to the writer's thread and back (a wake-up of the event loop each way), a BEGIN and a COMMIT writing the pages it
touched to the WAL, often the same index pages the write before it wrote. Batched, the trips and the COMMITs are
shared by every write waiting at the time; alone, a write costs what it did.

Each write still sees only what it was promised: it runs inside a SAVEPOINT, so one that raises is undone alone
and raises to its own caller; its result is given back only after the COMMIT that made it durable, and if that
COMMIT fails every write of the batch is told so. Urgent writes (a new event, which Slack waits for) go to the
front of the next batch, and a batch holds at most `most` writes, so none waits long behind bookkeeping.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (True, the work's result) or (False, the exception it raised)
BATCH_MOST = 16  # writes in one transaction: bounds an urgent write's wait behind the batch in flight


@dataclass
class _Waiting:
    work: Work
    future: asyncio.Future[Any]
    urgent: bool


class WriteBatches:
    """`transact(work)`: `work(conn)` run in a write transaction, shared with the writes waiting beside it.

    `in_thread` runs a function on the writer's connection, on its thread, in one trip; `hold_lock(urgent)` waits
    out a multi-statement transaction (one open on the connection when a batch arrives, which then runs after it).
    """

    def __init__(
        self,
        in_thread: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]],
        hold_lock: Callable[[bool], AbstractAsyncContextManager[None]],
        most: int = BATCH_MOST,
    ) -> None:
        self._in_thread = in_thread
        self._hold_lock = hold_lock
        self._most = most
        self._urgent: deque[_Waiting] = deque()
        self._rest: deque[_Waiting] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._busy = False  # a write or a batch is on its way to the writer's thread: newcomers wait their batch
        self._quiet = asyncio.Event()  # nothing in flight, nothing waiting
        self._quiet.set()

    async def transact(self, work: Callable[[sqlite3.Connection], T], urgent: bool = False) -> T:
        if not self._busy:  # nothing in flight: this write goes at once, alone, with no task between
            return await self._alone(work, urgent)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._rest).append(_Waiting(work, future, urgent))
        return await future

    async def drain(self) -> None:
        """Wait until every write handed over so far is committed (or has failed)."""
        await self._quiet.wait()

    async def _alone(self, work: Callable[[sqlite3.Connection], T], urgent: bool) -> T:
        self._busy = True
        self._quiet.clear()
        try:
            ((ok, value),) = await self._commit([work], urgent)
        finally:
            self._busy = False
            self._next()
        if ok:
            return value  # type: ignore[no-any-return]  # T, as `work` returned it
        raise value

    def _next(self) -> None:
        """Start a runner for the writes that queued meanwhile, or note that all is quiet."""
        if self._urgent or self._rest:
            self._busy = True
            self._runner = asyncio.create_task(self._run(), name="sqlite write batches")
        else:
            self._quiet.set()

    def _take(self) -> list[_Waiting]:
        """The next batch, urgent writes first; empty when none is waiting."""
        batch: list[_Waiting] = []
        for queue in (self._urgent, self._rest):
            while queue and len(batch) < self._most:
                waiting = queue.popleft()
                if not waiting.future.done():  # a caller cancelled before its write began: it is not made
                    batch.append(waiting)
        return batch

    async def _run(self) -> None:
        batch: list[_Waiting] = []
        try:
            while batch := self._take():
                try:
                    outcomes = await self._commit([w.work for w in batch], any(w.urgent for w in batch))
                except Exception as exc:  # BEGIN or COMMIT failed: none of the batch was made
                    outcomes = [(False, exc)] * len(batch)
                for waiting, (ok, value) in zip(batch, outcomes, strict=True):
                    if waiting.future.done():
                        continue  # its caller stopped waiting; the write was made all the same
                    if ok:
                        waiting.future.set_result(value)
                    else:
                        waiting.future.set_exception(value)
        except BaseException:  # cancelled (the loop closing): nobody is left waiting for an answer
            for waiting in (*batch, *self._urgent, *self._rest):
                waiting.future.cancel()
            self._urgent.clear()
            self._rest.clear()
            raise
        finally:
            self._runner = None
            self._busy = False
            self._next()

    async def _commit(self, works: list[Work], urgent: bool) -> list[Outcome]:
        outcomes: list[Outcome] | None = await self._in_thread(lambda conn: commit_all(conn, works))
        if outcomes is None:  # a multi-statement transaction is open between two of its statements
            async with self._hold_lock(urgent):
                outcomes = await self._in_thread(lambda conn: commit_all(conn, works))
        if outcomes is None:
            raise sqlite3.OperationalError("a write transaction was left open on the writer's connection")
        return outcomes


def commit_all(conn: sqlite3.Connection, works: list[Work]) -> list[Outcome] | None:
    """Run on the writer's thread: BEGIN IMMEDIATE, each work in a savepoint of its own (a work alone needs none:
    the transaction is its own), COMMIT; None (nothing done) when a transaction is already open there."""
    if conn.in_transaction:
        return None
    conn.execute("BEGIN IMMEDIATE")
    outcomes: list[Outcome] = []
    try:
        if len(works) == 1:
            try:
                outcomes.append((True, works[0](conn)))
            except Exception as exc:
                if conn.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                    conn.execute("ROLLBACK")
                return [(False, exc)]
        else:
            for work in works:
                conn.execute("SAVEPOINT one_write")
                try:
                    value = work(conn)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite ended the whole transaction: the batch is undone
                        raise
                    conn.execute("ROLLBACK TO one_write")
                    conn.execute("RELEASE one_write")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE one_write")
                    outcomes.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes
