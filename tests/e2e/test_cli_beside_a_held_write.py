"""The terminal beside a write another connection holds on the SQLite file (a `sqlite3` shell left in a
transaction, a writer stalled on a slow disk): `channels list` changes nothing and reads the bindings, as `check`
does (its open used to take the write lock for a migration with nothing to do); a change says what holds it up."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.e2e.test_guarantees import Rig, rig

Run = Callable[..., subprocess.CompletedProcess[str]]


def _beside_a_held_write(
    tmp_path: Path, commands: Callable[[Rig], list[tuple[str, ...]]]
) -> tuple[Rig, Run, list[subprocess.CompletedProcess[str]]]:
    r = rig(tmp_path, "0.16.8", ("alice",))
    env = base_env(r.slack.api_url, r.letta.base_url, tmp_path / "bridge.db")
    held = sqlite3.connect(tmp_path / "bridge.db", isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    try:
        return r, lambda *args: run_cli(env, *args), [run_cli(env, *command) for command in commands(r)]
    finally:
        held.execute("ROLLBACK")
        held.close()


def test_channels_list_reads_the_bindings_while_a_write_is_held(tmp_path: Path) -> None:
    r, _, (checked, listed) = _beside_a_held_write(tmp_path, lambda _: [("check",), ("channels", "list")])
    try:
        assert "C0GUARD01" in checked.stdout  # check reads the bindings meanwhile
        assert listed.returncode == 0 and "C0GUARD01" in listed.stdout, (listed.returncode, listed.stderr)
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_change_from_the_terminal_beside_a_held_write_says_what_holds_it_up(tmp_path: Path) -> None:
    """Opening no longer waits for the lock, so the change's own write meets it: words, not a traceback."""
    r, run, changes = _beside_a_held_write(
        tmp_path,
        lambda r: [("channels", "connect", "C0GUARD02", r.agents["alice"]), ("channels", "disconnect", "C0GUARD01")],
    )
    try:
        for change in changes:
            assert change.returncode == 1, change.stderr
            assert "Traceback" not in change.stderr, change.stderr
            assert "another process holds a write on it" in change.stderr, change.stderr
        assert "C0GUARD01" in run("channels", "list").stdout  # the refused disconnect changed nothing
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()
