"""A mention whose turn is committed by a slow but live PostgreSQL (a busy server: a trigger's pg_sleep) after
accept_turn's 2.5 s bound: the delivery is answered 500, Slack's retry finds the row (a duplicate), and the turn
must still run at once, as the fresh turn it is, not wait for the orphan sweep and run as resumed."""

from __future__ import annotations

import asyncio

import asyncpg

from bridge.relay import Relay
from bridge.store.database_url import open_store
from bridge.store.leases import BindingLeases
from tests.unit.test_relay import Worker, mention


def test_a_turn_committed_after_the_bound_runs_when_its_retry_finds_it(pg_url: str) -> None:
    async def main() -> tuple[list[str], float | None, list[bool]]:
        store = open_store(pg_url)
        await store.open()
        worker = Worker(store)
        worker.go_on.set()
        relay = Relay(store, worker, None, max_concurrent=8, leases=BindingLeases(store, 30.0, "web.1"))  # type: ignore[arg-type]
        await relay.resume()  # as serve does: the sweeper runs
        locker = await asyncpg.connect(pg_url)
        said: list[str] = []
        ran_after: float | None = None
        try:
            turn = mention(1, "hello")
            # A busy server: this one insert takes 3 s to run, then commits.
            await locker.execute(
                "CREATE TABLE slept (x int);"
                " CREATE FUNCTION busy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.text = 'hello' AND NOT EXISTS (SELECT 1 FROM slept) THEN"
                " INSERT INTO slept VALUES (1); PERFORM pg_sleep(3); END IF; RETURN NEW; END $$;"
                " CREATE TRIGGER busy BEFORE INSERT ON turns FOR EACH ROW EXECUTE FUNCTION busy();"
            )
            loop = asyncio.get_running_loop()
            try:
                await relay.accept(turn)  # Slack's first delivery
                said.append("200")
            except BaseException as exc:
                said.append(f"500 {type(exc).__name__}")
            await asyncio.sleep(1.0)  # Slack retries 1 s after the 500; the first insert has committed by then
            await relay.accept(turn)  # Slack's retry, 1 s after the 500
            said.append("200")
            retried = loop.time()
            while not worker.jobs and loop.time() - retried < 8:
                await asyncio.sleep(0.05)
            if worker.jobs:
                ran_after = round(loop.time() - retried, 1)
        finally:
            await locker.close()
            await relay.stop(1.0)
            await store.close()
        return said, ran_after, [job.resumed for job in worker.jobs]

    said, ran_after, resumed = asyncio.run(main())
    assert said[0].startswith("500"), said  # the bound answered the first delivery 500
    assert ran_after is not None and ran_after < 1.0, (
        f"the mention recorded by the timed-out delivery ran {ran_after} s after Slack's retry (deliveries: {said})"
    )
    assert resumed == [False], f"a turn that never started was run as resumed: {resumed}"
