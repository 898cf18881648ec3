"""A group's manager and turn limits, which a saved binding may lack: looked up on Letta, cached a while.

The store keeps a binding's target as it was resolved; the manager agent (supervisor, dynamic, sleeptime),
`max_turns` and `termination_token` live on the group record and are read from there when a turn needs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from bridge.domain import AgentRef, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.patterns import MANAGED

log = logging.getLogger(__name__)

LOOKED_UP = (*MANAGED, "round_robin")  # round robin: for its max_turns


async def with_manager(client: LettaClient, target: Target) -> Target:
    """`target` with the group's manager, max_turns and termination_token filled in from Letta."""
    if target.kind != "group" or target.group_id is None:
        return target
    group = await client.get_group(target.group_id)
    manager = target.manager
    if group.manager_agent_id and (manager is None or manager.id != group.manager_agent_id):
        agent = await client.get_agent(group.manager_agent_id)
        manager = AgentRef(agent.id, agent.name)
    return dataclasses.replace(
        target,
        manager=manager,
        max_turns=group.max_turns if group.max_turns is not None else target.max_turns,
        termination_token=group.termination_token or target.termination_token,
    )


class GroupDetails:
    """`with_manager`, cached per group for `ttl` seconds; a failed lookup leaves the target as it was.

    Each group has a lock of its own: turns of one group wait for its one lookup, while a burst over many groups
    (a start-up after an outage) looks them all up at once instead of one after another."""

    def __init__(self, client: LettaClient, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Target]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def complete(self, target: Target, limits: bool = True) -> Target:
        """`limits=False` where Letta plays the group itself (the server runner): only a manager, which the
        bridge locks and recovers through, is looked up; a round robin group's max_turns is Letta's business.

        Where the bridge plays a managed group, a failed lookup is raised: without its manager the group cannot be
        played, and playing it as a list would ask the wrong agents (a sleeptime group's background agents)."""
        looked_up = LOOKED_UP if limits else MANAGED
        if target.manager_type not in looked_up or target.group_id is None:
            return target
        if target.manager is not None or (target.manager_type == "round_robin" and target.max_turns is not None):
            return target
        now = asyncio.get_running_loop().time()
        async with self._locks.setdefault(target.group_id, asyncio.Lock()):
            cached = self._cache.get(target.group_id)
            if cached is not None and now - cached[0] < self._ttl and cached[1].agents == target.agents:
                return cached[1]
            try:
                full = await with_manager(self._client, target)
            except LettaError as error:
                log.warning("group %s: its manager could not be looked up: %s", target.group_id, error)
                if limits and target.manager_type in MANAGED:
                    raise
                return target
            self._cache[target.group_id] = (now, full)
            return full
