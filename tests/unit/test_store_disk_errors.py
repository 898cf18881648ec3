"""A SQLite file on a full or read-only disk: the start says so in one sentence (StoreError), as the store's other
file troubles are said (cannot_create, "cannot be written"). revBG: the lock file's pid note (hold_exclusively) and
the tightening of a loose file's mode (private_files) let an OSError through, a traceback instead of a line."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from bridge.store import StoreError, open_store
from tests.e2e.harness import base_env, run_cli
from tests.unit.old_databases import old_database
from tests.unit.test_store_ping import fill, small_disk


def start(url: str, serving: bool) -> str:
    async def main() -> str:
        store = open_store(url, serving=serving)  # serve/socket: serving=True; channels, workspaces: False
        try:
            await store.open()
        except StoreError as exc:
            return f"StoreError: {exc}"
        await store.close()
        return "opened"

    return asyncio.run(main())


def test_serve_on_a_full_disk_says_so_in_one_sentence(tmp_path: Path) -> None:
    """A database an older bridge left (v3: from before the .lock file beside it), the disk since filled up."""
    with small_disk(tmp_path) as disk:
        url = f"sqlite:///{disk / 'bridge.db'}"
        asyncio.run(old_database(url, 3))
        fill(disk)
        try:
            said = start(url, serving=True)
        except OSError as exc:
            pytest.fail(f"serve's start raised {exc!r} (a traceback) instead of a StoreError")
        done = run_cli(base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", disk / "bridge.db"), "serve")
    assert said.startswith("StoreError") and "\n" not in said, said
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [f"error: {said[12:]}"]


def test_a_database_on_a_read_only_disk_says_so_in_one_sentence(tmp_path: Path) -> None:
    """A database file readable by others (mode 644, as older bridges and copies leave it) on a disk mounted
    read-only (a restored backup, a volume mounted ro): `channels list` opens it without serving."""
    with small_disk(tmp_path) as disk:
        url = f"sqlite:///{disk / 'bridge.db'}"
        asyncio.run(old_database(url, 18))
        os.chmod(disk / "bridge.db", 0o644)
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0
        try:
            said = start(url, serving=False)
        except OSError as exc:
            pytest.fail(f"the start raised {exc!r} (a traceback) instead of a StoreError")
        env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", disk / "bridge.db")
        done = run_cli(env, "channels", "list", cwd=tmp_path)
    assert said.startswith("StoreError") and "\n" not in said, said
    assert done.returncode == 1 and done.stderr == f"error: {said[12:]}\n", done.stderr
