"""What the log says while turns wait for a database that went away: one line each way, not one a second."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import bridge.relay as relay_module
import bridge.turn_runs as turn_runs
from bridge.logs import Throttled
from bridge.turns import Job
from tests.unit.test_relay import Worker, mention, relaying, until_done


def test_turns_waiting_for_the_database_say_so_once_and_once_more_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Postgres restart of a minute with twenty turns running wrote a warning per turn every second (1,200
    lines). Each waiting turn now says once that it waits and once that the database answers again."""
    monkeypatch.setattr(turn_runs, "CRASH_PAUSES", (0.02,))
    monkeypatch.setattr(turn_runs, "DATABASE_LOOK_EVERY", 0.02)
    away = asyncio.Event()

    class Away(Worker):
        async def run(self, job: Job) -> str:
            self.jobs.append(job)
            if away.is_set():
                raise ConnectionError("the database went away")
            return await super().run(job)

    async def main() -> None:
        async with relaying(tmp_path / "b.db", Away) as rig:
            rig.worker.finish()
            real_ping = rig.store.ping

            async def ping() -> None:
                if away.is_set():
                    raise ConnectionRefusedError("the database went away")
                await real_ping()

            rig.late.ping = ping  # type: ignore[attr-defined]  # the relay's store answers no ping while away
            away.set()
            await rig.relay.accept(mention(1, "first"))
            await asyncio.sleep(0.5)  # some 25 looks at the database
            away.clear()
            await asyncio.wait_for(until_done(rig.store), 5)

    with caplog.at_level(logging.INFO, logger="bridge.relay"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.relay"]
    assert len([m for m in said if "the database does not answer" in m]) == 1, said
    assert len([m for m in said if "the database answers again" in m]) == 1, said


def test_a_sweep_that_cannot_look_for_orphaned_turns_says_so_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep looks every few seconds (every second here): an outage of an hour was a warning each time."""
    monkeypatch.setattr(relay_module, "unswept", Throttled(relay_module.log))  # no window left by another test

    async def main() -> None:
        async with relaying(tmp_path / "b.db", Worker) as rig:
            await rig.relay.resume()  # the database answers at the start, then goes away

            async def orphaned_bindings() -> list[tuple[str, str]]:
                raise ConnectionRefusedError("the database went away")

            rig.late.orphaned_bindings = orphaned_bindings  # type: ignore[attr-defined]
            await asyncio.sleep(3.5)  # three sweeps

    with caplog.at_level(logging.WARNING, logger="bridge.relay"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.relay"]
    assert len([m for m in said if "could not look for orphaned turns" in m]) == 1, said
