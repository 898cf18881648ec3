"""store.ping, which /readyz and a turn's runs made again after a crash ask: it says whether the database can
record a turn, not only whether it answers. A full disk (SQLite) and a read-only database (PostgreSQL: a standby
after a failover, a plan's quota) answered every read and passed, while each event got a 500 and a turn waiting to
run again was given up after three runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.domain import Turn
from bridge.store import StoreError, open_store
from tests.pg import PgServer


@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs: mounting one needs root (CI runs as root), so elsewhere the test is skipped."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def test_a_full_disk_fails_the_sqlite_ping_until_there_is_room_again(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:

        async def main() -> tuple[str | None, str | None]:
            store = open_store(f"sqlite:///{disk / 'bridge.db'}")
            await store.open()
            try:
                for n in range(20):  # a database in use: its write-ahead log has room it reuses, the disk none
                    await store.accept_turn(Turn("T1", "C1", f"1.{n:06d}", f"1.{n:06d}", "U1", "x" * 200, f"E{n}"), "o")
                await store.ping()
                filler = fill(disk)
                try:
                    await store.ping()
                    full = None
                except StoreError as exc:
                    full = str(exc)
                filler.unlink()
                await store.ping()
                return full, None
            finally:
                await store.close()

        full, _ = asyncio.run(main())  # and after the filler went, the ping passed again
    assert full is not None and "cannot be written" in full, "the ping passed on a full disk"


def test_a_read_only_postgres_fails_the_ping(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]

    async def main() -> list[str]:
        store = open_store(url)
        await store.open()
        said: list[str] = []
        try:
            await store.ping()
            # New sessions of the database are read-only, and the store's own are ended: it connects again.
            pg_server.psql(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
            pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            for _ in range(5):
                try:
                    await store.ping()
                    said.append("passed")
                except StoreError as exc:
                    said.append(str(exc))
                    break
                except Exception as exc:  # a pooled connection found ended
                    said.append(type(exc).__name__)
            return said
        finally:
            await store.close()

    said = asyncio.run(main())
    assert "passed" not in said and "read-only" in said[-1], said
