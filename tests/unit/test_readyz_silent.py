"""/readyz after a failover that black-holed the old primary: the pooled connections went silent (no reply, no
close), while new connections reach the database (the platform's address now leads to the new primary). The
bridge's readiness probe must come back to 200 once the database answers on a fresh connection."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from urllib.parse import urlsplit

from bridge.app import Bridge
from bridge.store.postgres import PostgresStore
from tests.unit.test_postgres_liveness import Silencer


def test_readyz_recovers_after_pooled_connections_went_silent(pg_url: str) -> None:
    async def main() -> list[tuple[float, str | None]]:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        seen: list[tuple[float, str | None]] = []
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl(),
                                  pool_size=5, serving=True)
            await store.open()
            try:
                # A busy moment filled the pool: five connections open, all idle again.
                await asyncio.gather(*(store.pool.fetchval("SELECT pg_sleep(0.2)") for _ in range(5)))
                relay.silence()  # the old primary black-holed; new connections reach the database
                app = SimpleNamespace(store=store)
                for _ in range(8):  # the platform's health check, every few seconds
                    started = asyncio.get_running_loop().time()
                    try:
                        async with asyncio.timeout(10):  # the platform's probe gave up long before this
                            problem = await Bridge._database_problem(app)  # type: ignore[arg-type]
                    except TimeoutError:
                        problem = "no answer at all (hung)"
                    seen.append((round(asyncio.get_running_loop().time() - started, 1), problem))
                    if problem is None:
                        break
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(10):
                        await store.close()
        return seen

    seen = asyncio.run(main())
    # Documented: /readyz answers 503 with a line saying why while the database does not answer (the probe is
    # bounded at 3 s), and 200 again once it does.
    assert all(seconds < 5 for seconds, _ in seen), f"/readyz hung instead of answering 503: {seen}"
    assert seen[-1][1] is None, f"/readyz never ready again though the database answers: {seen}"
