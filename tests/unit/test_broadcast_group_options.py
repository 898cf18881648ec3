"""`/letta connect group-… pattern=broadcast …` with an option broadcast does not take: the refusal names the
option (it said, against itself, that a round_robin group has its own way of answering and that broadcast is for
round-robin groups)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.domain import Pattern
from bridge.letta.client import LettaClient
from bridge.targets import TargetError, resolve_target, with_pattern
from tests.fakes.letta import FakeLetta


def _refusal(letta: FakeLetta, group: str, pattern: Pattern) -> str:
    async def go() -> str:
        client = LettaClient(letta.base_url)
        try:
            target = await resolve_target(client, [group])
            with pytest.raises(TargetError) as caught:
                await with_pattern(client, target, pattern)
            return str(caught.value)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_broadcast_with_max_turns_on_a_round_robin_group_says_what_is_wrong(letta: FakeLetta) -> None:
    """`/letta connect group-… pattern=broadcast max_turns=3` on a round-robin group: the refusal said "a
    round_robin group has its own way of answering; broadcast is for agent lists and round-robin groups", which
    contradicts itself and never names max_turns, the one thing wrong."""
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    group = letta.add_group([alice, bob], manager_type="round_robin")
    said = _refusal(letta, group, Pattern("broadcast", max_turns=3))
    assert "max_turns" in said, f"the refusal does not say max_turns is the trouble: {said!r}"
    assert not ("round_robin group has its own way" in said and "round-robin groups" in said), said
