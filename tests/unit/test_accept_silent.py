"""A failover that black-holed the old primary (the pooled connections went silent: no reply, no close), while
new connections reach the database. Slack's delivery of a mention is given 3 s and retried (1 s, 1 min, 5 min
later): one of those deliveries must be recorded once the database answers on a fresh connection, or the mention
is lost."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from bridge.domain import Turn
from bridge.store.postgres import PostgresStore
from tests.unit.test_postgres_liveness import Silencer


def test_a_mention_after_a_black_holing_failover_is_recorded_on_a_retry(pg_url: str) -> None:
    async def main() -> list[str]:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        tries: list[str] = []
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl(),
                                  pool_size=5, serving=True)
            await store.open()
            try:
                turn = Turn("T1", "C1", "1700000000.000100", "1700000000.000100", "U1", "hello", event_id="Ev1")
                assert await store.accept_turn(Turn("T1", "C1", "1.1", "1.1", "U1", "x", event_id="Ev0"), "o0")
                relay.silence()  # the old primary black-holed; new connections reach the database
                deliveries: list[asyncio.Task[int | None]] = []
                for _ in range(4):  # Slack's first delivery and its three retries, each a request of its own
                    deliveries.append(asyncio.create_task(store.accept_turn(turn, "otid-1")))
                    done, _pending = await asyncio.wait({deliveries[-1]}, timeout=3)  # Slack waits 3 s
                    if not done:
                        tries.append("no answer in 3 s")
                    elif deliveries[-1].exception() is not None:  # answered 500: Slack delivers it again
                        tries.append(f"failed {type(deliveries[-1].exception()).__name__}")
                    else:
                        tries.append(f"recorded {deliveries[-1].result()}")
                        break
                for delivery in deliveries:
                    delivery.cancel()
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(10):
                        await store.close()
        return tries

    tries = asyncio.run(main())
    assert tries[-1].startswith("recorded"), f"the mention was never recorded, lost: {tries}"
