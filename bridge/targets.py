"""Turn the ids someone typed into a checked `Target`: every id is looked up on Letta before anything is saved.

Shared by `channels connect`, the /letta command (through `bridge.configure`) and the default target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bridge.domain import AgentRef, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.wire import is_agent_id, is_app_server_agent_id, is_group_id


class TargetError(Exception):
    """The ids cannot be bound; the message says why in plain words (`for_operator`: to the person at the
    terminal, where that differs)."""

    def __init__(self, message: str, for_operator: str | None = None) -> None:
        super().__init__(message)
        self.for_operator = for_operator or message


def _lookup_failed(error: LettaError, what: str) -> TargetError:
    if error.kind == Kind.NOT_FOUND:
        return TargetError(f"{what} was not found on the Letta server at {error.base_url}.")
    if error.kind == Kind.INVALID:
        return TargetError(f"the Letta server refused {what}: {error.detail or 'invalid id'}.")
    return TargetError(error.explain(what), error.for_operator(what))


async def resolve_target(client: LettaClient, ids: Sequence[str]) -> Target:
    if not ids:
        raise TargetError("give a group id (group-<uuid>) or one or more agent ids (agent-<uuid>).")
    if len(ids) == 1 and ids[0].startswith("group-"):
        return await _resolve_group(client, ids[0])
    app_server = client.app_server
    bad = [i for i in ids if not is_agent_id(i, app_server)]
    if bad and app_server:
        raise TargetError(
            f"{', '.join(bad)} is not an agent id of this Letta App Server: expected agent-local-<uuid> "
            "(the App Server has no groups: bind its agents, in speaking order)."
        )
    local = [i for i in bad if is_app_server_agent_id(i)]
    if local:
        raise TargetError(
            f"{', '.join(local)} is an agent id of a Letta App Server, but the Letta server at {client.base_url} is "
            "a REST server: point LETTA_BASE_URL at the App Server (ws://host:port) to bind its agents."
        )
    if bad:
        hint = " (a group is bound alone, without agent ids)" if any(i.startswith("group-") for i in ids) else ""
        raise TargetError(
            f"{', '.join(bad)} is not an agent id: expected agent-<uuid>, or a single group-<uuid>{hint}."
        )
    if len(set(ids)) != len(ids):
        raise TargetError("an agent is listed twice; each agent can answer once per turn.")
    agents = await _agents(client, ids)
    return Target(kind="agents", agents=agents)


async def _resolve_group(client: LettaClient, group_id: str) -> Target:
    if not is_group_id(group_id):
        raise TargetError(f"{group_id} is not a group id: expected group-<uuid>.")
    try:
        group = await client.get_group(group_id)
    except LettaError as error:
        if error.kind == Kind.ROUTE_MISSING:
            raise TargetError(
                "this Letta server has no groups; bind the agents themselves, in speaking order: "
                "agent-<uuid> agent-<uuid> ..."
            ) from None
        raise _lookup_failed(error, f"group {group_id}") from None
    if not group.agent_ids:
        raise TargetError(f"group {group_id} has no agents, so nobody would answer.")
    agents = await _agents(client, group.agent_ids)
    manager = (await _agents(client, [group.manager_agent_id]))[0] if group.manager_agent_id else None
    return Target(
        kind="group",
        agents=agents,
        group_id=group.id,
        manager_type=group.manager_type,
        description=group.description or "",
        manager=manager,
        max_turns=group.max_turns,
        termination_token=group.termination_token,
    )


async def _agents(client: LettaClient, agent_ids: Sequence[str]) -> tuple[AgentRef, ...]:
    async def one(agent_id: str) -> AgentRef:
        try:
            agent = await client.get_agent(agent_id)
        except LettaError as error:
            raise _lookup_failed(error, f"agent {agent_id}") from None
        return AgentRef(agent.id, agent.name)

    return tuple(await asyncio.gather(*(one(a) for a in agent_ids)))
