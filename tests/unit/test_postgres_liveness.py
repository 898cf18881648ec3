"""Postgres agent locks across processes when the database is slow or a connection goes silent: a live process's
sends keep the agent from the others, and a send that has ended never keeps it."""

from __future__ import annotations

import asyncio

import asyncpg

from bridge.store.postgres import PostgresStore


def test_a_send_cancelled_while_its_record_was_being_deleted_leaves_the_agent_free(pg_url: str) -> None:
    """The turn was cancelled (a Stop, its deadline, its lease lost, a shutdown) just as its finished send's
    `agent_sends` row was being deleted on a slow database. Before, the row stayed while its process lived, and
    every other process's send to that agent waited for it until its turn's deadline."""

    async def main() -> None:
        first = PostgresStore(pg_url, alive_seconds=1.5)
        second = PostgresStore(pg_url, alive_seconds=1.5)
        await first.open(), await second.open()
        slow = await asyncpg.connect(pg_url)
        try:
            deleting = asyncio.Event()

            async def send() -> None:
                async with first.agent_lock(["agent-ida"]):
                    await slow.execute("BEGIN")  # the database is slow to delete the send's row
                    await slow.execute("SELECT 1 FROM agent_sends FOR UPDATE")
                    deleting.set()

            sending = asyncio.create_task(send())
            await deleting.wait()
            await asyncio.sleep(0.3)  # the send has ended: its row's deletion waits
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await slow.execute("ROLLBACK")
            async with asyncio.timeout(6), second.agent_lock(["agent-ida"]):  # `first` lives on, sending nothing
                pass
        finally:
            await slow.close()
            await first.close(), await second.close()

    asyncio.run(main())
