"""revBV: Postgres settings a managed database comes with: libpq's connect_timeout=0 (wait as long as it takes) and a
statement_timeout set on the database by its operator or provider."""

from __future__ import annotations

import asyncio

from bridge.store import open_store
from tests.pg import PgServer


def test_connect_timeout_zero_means_no_limit_as_in_libpq(pg_url: str) -> None:
    """libpq: `connect_timeout` zero (or negative) means wait indefinitely. A healthy database given so must open,
    not be said to give `no answer in time` at once."""

    async def main() -> None:
        store = open_store(pg_url + "?connect_timeout=0")
        await store.open()
        try:
            await store.ping()
        finally:
            await store.close()

    asyncio.run(main())


def test_an_agent_lock_waited_for_under_a_database_statement_timeout_is_still_granted(
    pg_server: PgServer, pg_url: str
) -> None:
    """A database whose operator set a 1 s statement_timeout: a send waiting for an agent another process is
    sending to must go on waiting (as it does under its own 2 s lock_timeout), not fail the turn."""
    name = pg_url.rsplit("/", 1)[1]
    pg_server.psql(f"ALTER DATABASE {name} SET statement_timeout = '1s'")

    async def main() -> None:
        one, two = open_store(pg_url), open_store(pg_url)
        await one.open(), await two.open()
        try:
            holding = asyncio.Event()

            async def hold() -> None:
                async with one.agent_lock(["agent-1"]):
                    holding.set()
                    await asyncio.sleep(3)

            holder = asyncio.create_task(hold())
            await holding.wait()
            async with asyncio.timeout(20):
                async with two.agent_lock(["agent-1"]):
                    pass
            await holder
        finally:
            await one.close(), await two.close()

    asyncio.run(main())
