"""bridge/relay.py: a turn accepted in this process is run as fresh (not resumed) and logged with the request that
brought it, even when a worker already running for its binding takes it the moment its row is committed, before
the accepting coroutine has run again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.domain import Turn
from bridge.logs import log_context
from bridge.relay import Relay
from bridge.store.base import Store, open_store
from bridge.turns import Job


class LateAccepts:
    """The real store, except that `accept_turn` returns a while after its row is committed: what a busy loop
    does to the coroutine waiting on it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.late = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        turn_id = await self._store.accept_turn(turn, otid)
        if self.late:
            await asyncio.sleep(0.2)
        return turn_id


class Worker:
    """Runs nothing: holds the first turn until told to go on, records each job it is given, and finishes it in
    the store as the real worker does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs: list[Job] = []
        self.go_on = asyncio.Event()

        async def in_parallel(team_id: str, channel_id: str) -> bool:
            return False

        self.threads = SimpleNamespace(in_parallel=in_parallel)

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        if len(self.jobs) == 1:
            await self.go_on.wait()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


def test_a_turn_taken_by_a_running_worker_before_its_accept_returns_is_fresh(tmp_path: Path) -> None:
    async def main() -> list[tuple[int, bool]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        late = LateAccepts(store)
        worker = Worker(store)
        relay = Relay(late, worker, None, max_concurrent=4)  # type: ignore[arg-type]  # doubles
        try:
            await relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "first", "Ev1"))
            while not worker.jobs:
                await asyncio.sleep(0.01)  # the binding's worker runs the first turn, and holds it
            late.late = True
            with log_context(request_id="req-second"):
                second = asyncio.ensure_future(
                    relay.accept(Turn("T1", "C1", "2.000001", "2.000001", "U1", "second", "Ev2"))
                )
                await asyncio.sleep(0.05)  # the second row is committed; its accept has not returned
            worker.go_on.set()
            while len(worker.jobs) < 2:
                await asyncio.sleep(0.01)
            await second
            return [(job.turn_id, job.resumed) for job in worker.jobs]
        finally:
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == [(1, False), (2, False)]
