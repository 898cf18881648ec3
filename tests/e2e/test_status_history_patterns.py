"""/letta status's "Last changes" for a group defined in the bridge: the history keeps only the agents'
ids, so two different bindings (a supervisor managed by one agent, then a dynamic group managed by another) read
as the same change twice, and the manager who answers is in no line."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.slash import slash_world


def test_status_history_tells_two_different_patterns_apart(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.8") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        boss, chief = sw.letta.add_agent("boss"), sw.letta.add_agent("chief")
        channel = "C0HISTORY"
        first = sw.ask(f"connect {a} {b} pattern=supervisor manager={boss}", channel)
        assert "Connected this channel" in first, first
        second = sw.ask(f"connect {a} {b} pattern=dynamic manager={chief}", channel)
        assert "This replaces" in second, second
        status = sw.ask("status", channel)
        history = status.split("*Last changes:*\n", 1)[1].splitlines()
        assert len(history) == 2, status
        latest, earlier = (line.split(": ", 1)[1] for line in history)
        assert latest != earlier, status  # two different bindings, said the same way
