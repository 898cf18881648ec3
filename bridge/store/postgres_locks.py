"""Postgres's locks across processes: session advisory locks, and the record of each agent send in flight.

An advisory lock lives in its session, so it goes when the session does: a process killed frees its agents at
once, but so does a database restart (or failover) under a send still running at Letta. Each agent send is
therefore also a row of `agent_sends`, written once the lock is granted and deleted when the send ends: a
process given the lock while another's row stands (the restart freed the lock, not the send) waits until that
row is gone, or its process's heartbeat ran out (`bridge_processes`: it is dead or frozen). A send cut short (a
Stop, its deadline, a shutdown past its grace) goes on at Letta though its process lives on or stopped cleanly: its
row is kept, owned by nobody (CUT_SHORT), so that the next process to send to the agent takes it over and waits out
the run (clients.py) instead of asking the agent while it still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg

from bridge.store.base import StoreError

if TYPE_CHECKING:
    from bridge.store.postgres_connection import Conn, Pool

log = logging.getLogger(__name__)

UNLOCK_TIMEOUT = 5.0
# A send recorded by a process whose heartbeat runs is waited for; one of a dead process's, or this one's (its own
# locks keep its sends apart), is taken over.
# A row comes back when the send is recorded, naming the owner of the record it replaced (NULL: none).
_CLAIM_SEND = (
    "WITH before AS (SELECT owner FROM agent_sends WHERE key = $1)"
    " INSERT INTO agent_sends (key, owner, token) VALUES ($1, $2, $3)"
    " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = excluded.token"
    " WHERE agent_sends.owner = excluded.owner OR NOT EXISTS (SELECT 1 FROM bridge_processes p"
    " WHERE p.owner = agent_sends.owner AND p.expires_at >= now())"
    " RETURNING (SELECT owner FROM before)"
)
_END_SENDS = "DELETE FROM agent_sends WHERE token = ANY($1::text[])"
# The owner of a send cut short: no process's, so the next send to its agent takes the record over.
CUT_SHORT = "cut short"
_LEAVE_SENDS = f"UPDATE agent_sends SET owner = '{CUT_SHORT}' WHERE token = ANY($1::text[])"  # noqa: S608


class SendRecord:
    """This process's rows of `agent_sends`: written under the lock, deleted as the send ends, or later (the
    heartbeat retries) when the database did not answer then."""

    def __init__(self, owner: str, pool: Callable[[], Pool], look_every: float) -> None:
        self.owner = owner
        self._pool = pool
        self._look_every = look_every
        self.left: set[str] = set()  # tokens whose rows could not be deleted yet
        self.left_going: set[str] = set()  # tokens of sends cut short whose rows could not be given up yet

    async def claim(self, conn: Conn, key: int, token: str) -> bool:
        """Record the send; while another live process's send to the agent is recorded, wait for it. True when
        the record taken over was another process's (dead or frozen): its send may still be running at Letta."""
        waited = False
        while (claimed := await self._claimed(conn, key, token)) is None:
            if not waited:
                log.warning("waiting for a send another process made before the database restarted")
                waited = True
            await asyncio.sleep(self._look_every)
        return claimed

    async def _claimed(self, conn: Conn, key: int, token: str) -> bool | None:
        """None: not recorded (another live process's send is)."""
        try:
            row = await conn.fetchrow(_CLAIM_SEND, key, self.owner, token)
        except asyncpg.LockNotAvailableError:  # the row is being deleted (the lock pool's lock_timeout): look again
            return None
        return None if row is None else row[0] not in (None, self.owner)

    async def end(self, conn: Conn, token: str, cut_short: bool = False) -> None:
        """Delete the send's row; one `cut_short` is given up instead (CUT_SHORT): its run may still be going."""
        # Counted as left until done: an end cancelled midway (a Stop, a deadline, a lost lease, on a slow
        # database) leaves the row to the heartbeat's sweep, not standing for as long as this process lives.
        left, query = (self.left_going, _LEAVE_SENDS) if cut_short else (self.left, _END_SENDS)
        left.add(token)
        try:
            async with asyncio.timeout(UNLOCK_TIMEOUT):
                await conn.execute(query, [token])
        except Exception:  # the session is gone (a restart) or does not answer: another connection tries
            try:
                async with bounded(self._pool(), UNLOCK_TIMEOUT) as other:
                    await other.execute(query, [token])
            except Exception:
                return
        left.discard(token)

    async def sweep(self, conn: Conn) -> None:
        """End the rows a database that did not answer left behind (on the heartbeat's connection)."""
        for left, query in ((self.left, _END_SENDS), (self.left_going, _LEAVE_SENDS)):
            if left:
                tokens = sorted(left)
                await conn.execute(query, tokens)
                left.difference_update(tokens)


# Given to the writes a Slack delivery waits on (under its 3 s), and to the readiness ping (under /readyz's 3 s).
ACK_SECONDS = 2.5
PING_SECONDS = 2.5


@asynccontextmanager
async def bounded(pool: Pool, within: float | None) -> AsyncIterator[Conn]:
    """A connection of `pool` for work that must end within `within` seconds, or the caller's own timeout. One
    that has not answered by then is dropped, not waited for: asyncpg's pool waits for a cancelled query's
    acknowledgement before taking its connection back, and a connection gone silent (a NAT or load balancer
    dropped it) never sends one. Its siblings likely went with it (the same NAT, a database failed over): every
    idle connection of the pool is replaced as it is next taken."""
    async with asyncio.timeout(within):
        conn = await pool.acquire()
        try:
            yield conn
        except asyncio.CancelledError:
            conn.terminate()
            await pool.expire_connections()
            raise
        finally:
            await pool.release(conn)


@asynccontextmanager
async def advisory(
    pool: Pool | None,
    keys: list[int],
    waited: Callable[[int], Awaitable[None]] | None = None,
    sends: SendRecord | None = None,
    token: str = "",
    inherited: set[int] | None = None,
) -> AsyncIterator[None]:
    """Session advisory locks on one connection of `pool`, taken in the order given, all freed at the end. Where
    the pool's sessions have a lock_timeout, `waited(key)` runs each time a wait for a key times out. With
    `sends`, each key's send is recorded under `token` once its lock is granted, and the keys whose record
    another process left (or a send cut short) are added to `inherited`; the record of a send the caller's work
    raised out of is given up (CUT_SHORT), not deleted."""
    if pool is None:
        raise StoreError("the store is not open")
    cut_short = False  # the caller's work under the locks raised: a send it made may still be running
    async with pool.acquire() as conn:
        try:
            for key in keys:
                while True:
                    try:
                        await conn.execute("SELECT pg_advisory_lock($1)", key)
                        break
                    except asyncpg.LockNotAvailableError:
                        if waited is None:
                            raise
                        await waited(key)
                if sends is not None and await sends.claim(conn, key, token) and inherited is not None:
                    inherited.add(key)
            try:
                yield
            except BaseException:
                cut_short = True
                raise
        finally:
            if sends is not None:
                await sends.end(conn, token, cut_short)
            # Also frees a lock granted just as a cancelled wait gave up. A database that does not answer
            # gets the connection closed instead: the server frees a session's locks when it ends. A session
            # the server already ended (a restart) left the pool with its locks: there is nothing to free,
            # and the send it guarded has its answer all the same.
            try:
                async with asyncio.timeout(UNLOCK_TIMEOUT):
                    await conn.execute("SELECT pg_advisory_unlock_all()")
            except Exception:
                with contextlib.suppress(asyncpg.InterfaceError):  # already released: the session is gone
                    conn.terminate()
