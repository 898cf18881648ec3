"""A supervisor group, or a round robin group with max_turns (as Letta 0.11.7 gives one), connected again by the
same admin with nothing changed is answered as a new connect that replaces itself, announced in the channel again and
logged in its history again: Configurator.save compares the target resolved from Letta (manager, max_turns,
termination_token) with the stored one, which keeps none of them for a Letta group (store/rows.py binding_columns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import backend_env
from tests.e2e.slash import slash_world


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("kind", ["supervisor", "round_robin"])
def test_a_group_with_a_manager_or_max_turns_connected_twice_is_unchanged(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, backend: str
) -> None:
    with slash_world(tmp_path, **backend_env(request, backend)) as w:
        ids = {n: w.letta.add_agent(n) for n in ("boss", "alice", "bob")}
        manager = ids["boss"] if kind == "supervisor" else None
        group = w.letta.add_group([ids["alice"], ids["bob"]], manager_type=kind, manager_agent_id=manager,
                                  max_turns=3)
        first = w.ask(f"connect {group}", "C0SUPER01")
        assert "Connected" in first, first
        again = w.ask(f"connect {group}", "C0SUPER01")
        status = w.ask("status", "C0SUPER01")
        assert "connected to this already" in again, again
        assert status.count("connected to `") == 1, status
