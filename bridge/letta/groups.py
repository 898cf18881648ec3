"""A group's members, manager and turn limits as Letta has them now: looked up on Letta, cached a while.

The store keeps a binding's target as it was resolved when the channel was connected; the group record on Letta
may have changed since (a member swapped, added or removed with `PATCH /v1/groups/{id}`). Where the bridge plays
the group, its members, manager (supervisor, dynamic, sleeptime), `max_turns` and `termination_token` are read
from the record, so that the agents asked are the group's now.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime

from bridge.domain import AgentRef, Target
from bridge.keyed_locks import KeyedLocks
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import Group
from bridge.letta.patterns import MANAGED

log = logging.getLogger(__name__)

LOOKED_UP = (*MANAGED, "round_robin")  # round robin: for its members and max_turns


@dataclasses.dataclass(frozen=True, slots=True)
class GroupRecord:
    """What a turn takes from a group's record: kept for every group a process has played, so not the whole wire
    model (about 3 KB a group with the fields Letta adds)."""

    agent_ids: tuple[str, ...]
    manager_agent_id: str | None
    max_turns: int | None
    termination_token: str | None

    @classmethod
    def of(cls, group: Group) -> GroupRecord:
        return cls(tuple(group.agent_ids), group.manager_agent_id, group.max_turns, group.termination_token)


async def with_record(
    client: LettaClient,
    target: Target,
    group: GroupRecord,
    names: dict[str, AgentRef] | None = None,
    gone: set[str] | None = None,
) -> Target:
    """`target` with the group's members, manager, max_turns and termination_token as `group` (its record) has them;
    `names`: agents' names known already (the target's own come first), added to with each one looked up; `gone`:
    agents Letta no longer knows, added to likewise.

    A member the binding does not list and Letta does not know (deleted: 0.16.8 keeps a deleted agent's id in its
    groups' `agent_ids`) is left out, as Letta's own membership (groups_agents) leaves it: the others still play."""
    names = {} if names is None else names
    gone = set() if gone is None else gone
    known = {**names, **{a.id: a for a in target.agents}}
    if target.manager is not None:
        known[target.manager.id] = target.manager

    async def named(agent_id: str) -> AgentRef:
        if agent_id in known:
            return known[agent_id]
        agent = await client.get_agent(agent_id)
        names[agent_id] = known[agent_id] = AgentRef(agent.id, agent.name)
        return known[agent_id]

    async def member(agent_id: str) -> AgentRef | None:
        if agent_id in gone:
            return None
        try:
            return await named(agent_id)
        except LettaError as error:
            if error.kind != Kind.NOT_FOUND:
                raise
            gone.add(agent_id)
            log.warning("group %s: member %s is left out: Letta no longer knows it (%s)", target.group_id,
                        agent_id, error)
            return None

    members = target.agents
    if group.agent_ids and tuple(a.id for a in members) != tuple(group.agent_ids):
        found = await asyncio.gather(*(member(i) for i in group.agent_ids))
        members = tuple(a for a in found if a is not None)
        log.info("group %s: its members changed on Letta since the channel was connected", target.group_id)
    manager = target.manager
    if group.manager_agent_id and (manager is None or manager.id != group.manager_agent_id):
        manager = await named(group.manager_agent_id)
    return dataclasses.replace(
        target,
        agents=members,
        manager=manager,
        max_turns=group.max_turns if group.max_turns is not None else target.max_turns,
        termination_token=group.termination_token or target.termination_token,
    )


async def as_recorded(client: LettaClient, target: Target) -> Target:
    """`target` (a Letta group) as its record on Letta has it now, looked up once, uncached: what a command shows."""
    record = GroupRecord.of(await client.get_group(target.group_id or ""))
    return await with_record(client, target, record)


@dataclasses.dataclass(frozen=True, slots=True)
class _Read:
    """A group's record and when it was read: `at` (loop time) for the cache's TTL, `saved_before` (wall clock,
    taken as the lookup was sent) to tell a binding saved since, which may name members the record does not."""

    at: float
    saved_before: datetime
    record: GroupRecord


def _saved_after(target: Target, read: _Read) -> bool:
    """The binding was saved (connected again, here or by another process) after the record was read."""
    saved = target.saved_at
    if saved is None:
        return False
    return (saved if saved.tzinfo is not None else saved.replace(tzinfo=UTC)) > read.saved_before


def _as_saved(target: Target, last: GroupRecord) -> GroupRecord:
    """The binding as saved, newer than the last record read: its members (a member the connect showed removed
    stays removed); what the store does not keep for a Letta group (its manager, limits) from that record."""
    return GroupRecord(
        tuple(a.id for a in target.agents),
        target.manager.id if target.manager is not None else last.manager_agent_id,
        target.max_turns if target.max_turns is not None else last.max_turns,
        target.termination_token or last.termination_token,
    )


class GroupDetails:
    """`with_record` over each group's record, looked up once per `ttl` seconds (a change on Letta is seen within
    that), and again at once for a binding saved after it was read (the channel connected again); a failed lookup
    uses the record read last, or the binding as saved where that is newer, or where no record was read yet.

    Each group has a lock of its own: turns of one group wait for its one lookup, while a burst over many groups
    (a start-up after an outage) looks them all up at once instead of one after another."""

    def __init__(self, client: LettaClient, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        # Each group's record as Letta last gave it, and when: one lookup per group, whichever binding asks (two
        # channels may bind one group with different saved members; both saved before the read, neither re-reads).
        self._records: dict[str, _Read] = {}
        self._names: dict[str, AgentRef] = {}  # agents' names looked up for a member the binding did not list
        self._gone: set[str] = set()  # members Letta no longer knows (deleted): not looked up each turn again
        self._locks = KeyedLocks()

    async def complete(self, target: Target, limits: bool = True) -> Target:
        """`limits=False` where Letta plays the group itself (the server runner): only a manager, which the
        bridge locks and recovers through, is looked up, and a dynamic group's members, whose replies are told
        from the manager's by their names; a round robin group's max_turns is Letta's business.

        Where the bridge plays a managed group, a failed lookup is raised: without its manager the group cannot be
        played, and playing it as a list would ask the wrong agents (a sleeptime group's background agents)."""
        played = limits and target.kind == "group" and target.broadcast  # a round robin group asked all at once
        if (target.manager_type not in (LOOKED_UP if limits else MANAGED) and not played) or target.group_id is None:
            return target
        if not limits and target.manager is not None and target.manager_type != "dynamic":
            return target  # Letta plays it with its members as they are: only the manager was wanted
        # (A dynamic group's speakers are told from its manager's choices by name: both as the record has them.)
        async with self._locks.hold(target.group_id):
            now = asyncio.get_running_loop().time()
            cached = self._records.get(target.group_id)
            try:
                if cached is None or now - cached.at >= self._ttl or _saved_after(target, cached):
                    sent = datetime.now(UTC)
                    try:
                        record = GroupRecord.of(await self._client.get_group(target.group_id))
                    except LettaError as error:
                        if cached is None:
                            raise
                        # Nearer to the group now than an older binding: a member removed since stays removed.
                        log.warning(
                            "group %s: its record could not be read (%s): the last one read is used, or the "
                            "binding as saved where it is newer", target.group_id, error,
                        )
                        if _saved_after(target, cached):
                            return await with_record(
                                self._client, target, _as_saved(target, cached.record), self._names, self._gone
                            )
                    else:
                        cached = self._records[target.group_id] = _Read(now, sent, record)
                return await with_record(self._client, target, cached.record, self._names, self._gone)
            except LettaError as error:
                log.warning("group %s: its record could not be looked up: %s", target.group_id, error)
                if limits and target.manager_type in MANAGED and target.manager is None:
                    raise
                return target  # as saved when the channel was connected (its manager too, where it was saved)
