"""DEFAULT_TARGET's lookup (bridge/configure.py): the binding a DM (or an unbound channel, where asked) runs with."""

from __future__ import annotations

import asyncio

import pytest

from bridge import configure
from bridge.config import Settings
from bridge.configure import Configurator
from bridge.domain import Binding, Turn
from bridge.letta.client import LettaClient
from bridge.targets import TargetError
from tests.fakes.letta import FakeLetta

DM = Turn("T1", "D1", "1.000001", "1.000001", "U1", "hi", "Ev1")


def test_a_default_target_looked_up_before_outlasts_letta_being_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its lookup is made again every few minutes: one made while Letta was down turned every DM away until the
    next, though the target was known and the DM's own send would have said what is wrong, if anything."""
    monkeypatch.setattr(configure, "DEFAULT_TARGET_TTL", 0.0)  # every turn looks it up again
    letta = FakeLetta(version="0.16.8")
    letta.start()
    dora = letta.add_agent("dora")

    async def main() -> tuple[Binding | None, Binding | None]:
        client = LettaClient(letta.base_url, connect_timeout=2.0, read_timeout=5.0, retry_base=0.01)
        cfg = Configurator(Settings(default_target=(dora,)), None, client, None)  # type: ignore[arg-type]
        try:
            first = await cfg.default_binding(DM.team_id, DM.channel_id)
            letta.stop()
            return first, await cfg.default_binding(DM.team_id, DM.channel_id)
        finally:
            await client.aclose()

    first, later = asyncio.run(main())
    assert first is not None and [a.id for a in first.target.agents] == [dora]
    assert later is not None and later.target == first.target


def test_a_default_target_never_found_is_said_in_words() -> None:
    """Not a silent None (answered as "not connected": connect the channel), but why it cannot be used."""
    letta = FakeLetta(version="0.16.8")
    letta.start()
    gone = "agent-00000000-0000-4000-8000-000000000000"

    async def main() -> str:
        client = LettaClient(letta.base_url, connect_timeout=2.0, read_timeout=5.0, retry_base=0.01)
        cfg = Configurator(Settings(default_target=(gone,)), None, client, None)  # type: ignore[arg-type]
        try:
            with pytest.raises(TargetError) as caught:
                await cfg.default_binding(DM.team_id, DM.channel_id)
            return str(caught.value)
        finally:
            await client.aclose()
            letta.stop()

    assert "was not found" in asyncio.run(main())


def test_a_default_target_deleted_on_letta_since_is_said_at_its_next_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Letta's 404 for the agent is no "Letta down for a moment": the last lookup was kept until a restart, and every
    DM was sent to the deleted agent and told to connect the DM, never that DEFAULT_TARGET names nothing."""
    monkeypatch.setattr(configure, "DEFAULT_TARGET_TTL", 0.0)
    letta = FakeLetta(version="0.16.8")
    letta.start()
    dora = letta.add_agent("dora")

    async def main() -> str:
        client = LettaClient(letta.base_url, connect_timeout=2.0, read_timeout=5.0, retry_base=0.01)
        cfg = Configurator(Settings(default_target=(dora,)), None, client, None)  # type: ignore[arg-type]
        try:
            assert await cfg.default_binding(DM.team_id, DM.channel_id) is not None
            letta.remove_agent(dora)
            with pytest.raises(TargetError) as caught:
                await cfg.default_binding(DM.team_id, DM.channel_id)
            return str(caught.value)
        finally:
            await client.aclose()
            letta.stop()

    assert "was not found" in asyncio.run(main())
