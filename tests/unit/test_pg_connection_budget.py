"""docs/paas.md's connection budget per process: DATABASE_POOL_SIZE + 1 + min(MAX_CONCURRENT_TURNS, 16), and 2 more
in OAuth mode while Slack tokens are renewed (that pool went unsaid, and two OAuth-mode processes sized from the
docs could pass the plan's limit). Every pool the store opens is held at once here, and counted on the server."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bridge.store.postgres import PostgresStore
from bridge.store.postgres_connection import RENEWAL_CONNECTIONS

PAAS = Path(__file__).resolve().parents[2] / "docs" / "paas.md"


def test_a_process_stays_within_the_documented_connection_count(pg_url: str) -> None:
    pool_size, max_turns = 1, 1
    documented = pool_size + 1 + min(max_turns, 16) + RENEWAL_CONNECTIONS  # in OAuth mode
    said = " ".join(PAAS.read_text().split())
    assert f"up to {RENEWAL_CONNECTIONS} more while Slack tokens are being renewed" in said

    async def main() -> int:
        store = PostgresStore(pg_url, pool_size=pool_size, lock_connections=min(max_turns, 16))
        await store.open()
        try:
            release = asyncio.Event()
            held = 0

            async def hold(lock: AbstractAsyncContextManager[object]) -> None:
                nonlocal held
                async with lock:
                    held += 1
                    await release.wait()

            tasks = [
                asyncio.create_task(hold(store.agent_lock(["agent-1"]))),  # a Letta send in flight
                asyncio.create_task(hold(store.token_lock("slack-token-rotation:T1"))),  # OAuth: a token renewal
                asyncio.create_task(hold(store.token_lock("slack-token-rotation:T2"))),  # another workspace's
            ]
            while held < 3:
                await asyncio.sleep(0.05)
            count = int(
                await store.pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name LIKE 'letta-slack-bridge%'"
                )
            )
            release.set()
            await asyncio.gather(*tasks)
            return count
        finally:
            await store.close()

    count = asyncio.run(main())
    assert count <= documented, f"{count} connections open, docs/paas.md promises at most {documented}"
