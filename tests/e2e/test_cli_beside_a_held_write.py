"""`channels list` changes nothing, yet refuses while another connection holds a write on the SQLite file
(a `sqlite3` shell left in a transaction, a writer stalled on a slow disk): its open takes the write lock for a
migration that has nothing to do. `check`, in the same moment, reads the same bindings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.e2e.test_guarantees import rig


def test_channels_list_reads_the_bindings_while_a_write_is_held(tmp_path: Path) -> None:
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        env = base_env(r.slack.api_url, r.letta.base_url, tmp_path / "bridge.db")
        held = sqlite3.connect(tmp_path / "bridge.db", isolation_level=None)
        held.execute("BEGIN IMMEDIATE")
        try:
            checked = run_cli(env, "check")
            listed = run_cli(env, "channels", "list")
        finally:
            held.execute("ROLLBACK")
            held.close()
        assert "C0GUARD01" in checked.stdout  # check reads the bindings meanwhile
        assert listed.returncode == 0 and "C0GUARD01" in listed.stdout, (listed.returncode, listed.stderr)
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()
