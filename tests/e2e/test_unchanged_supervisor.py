"""the same admin connecting a channel again to the same supervisor (or dynamic, sleeptime) group is told
'connected to this already, so nothing changed' by a Letta group without a manager, but for one with a manager
the connect is saved as a change each time: a new history entry and another notice in the channel."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.slash import slash_world


def test_connecting_a_supervisor_group_again_is_no_change(tmp_path: Path) -> None:
    with slash_world(tmp_path) as w:
        ids = [w.letta.add_agent(n) for n in ("boss", "alice", "bob")]
        group = w.letta.add_group(ids[1:], manager_type="supervisor", manager_agent_id=ids[0])
        first = w.ask(f"connect {group}", "C0SUPER01")
        assert "alice" in first, first
        again = w.ask(f"connect {group}", "C0SUPER01")
        assert "connected to this already" in again and "manager boss" in again, again
