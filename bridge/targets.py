"""Turn the ids someone typed into a checked `Target`: every id is looked up on Letta before anything is saved.

Shared by `channels connect`, the /letta command (through `bridge.configure`) and the default target. A list of
agents may be given a pattern the bridge plays (`with_pattern`): a bridge-defined group, for servers that keep no
group records (the App Server, Letta Cloud, 0.16.5+), which behaves as a Letta group of that pattern does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence

from bridge.domain import BROADCAST, PATTERNS, AgentRef, Pattern, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.wire import is_agent_id, is_app_server_agent_id, is_group_id
from bridge.logs import shown_url

log = logging.getLogger(__name__)

class TargetError(Exception):
    """The ids cannot be bound; the message says why in plain words (`for_operator`: to the person at the
    terminal, where that differs)."""

    def __init__(
        self, message: str, for_operator: str | None = None, usage: bool = False, may_pass: bool = False
    ) -> None:
        super().__init__(message)
        self.for_operator = for_operator or message
        self.usage = usage  # the ids or options as given cannot work (exit 2), not a lookup that failed (exit 1)
        self.may_pass = may_pass  # Letta's trouble of the moment (down, slow, a 5xx, a rate limit), not the ids


# Lookup failures that say nothing of the ids: the same lookup may work in a moment.
PASSING = frozenset({Kind.UNREACHABLE, Kind.TIMEOUT, Kind.DISCONNECTED, Kind.RATE_LIMITED, Kind.SERVER_ERROR})


# Letta 0.16's 422 for a path id that is not `<kind>-<uuid4>`: pydantic's error list, as a Python repr.
_ID_PATTERN = re.compile(r"should match pattern '(agent|group)-\{uuid4\}'")


def _lookup_failed(error: LettaError, what: str, command: str | None) -> TargetError:
    """`command`: the slash command a person in Slack has (SLACK_COMMAND), None where the words go to a terminal."""
    if error.kind == Kind.NOT_FOUND:
        return TargetError(f"{what} was not found on the Letta server at {error.base_url}.")
    if error.kind == Kind.INVALID and (shape := _ID_PATTERN.search(error.detail or "")):
        kind = shape.group(1)
        refused = (
            f"the Letta server refused {what}: its {kind} ids are {kind}-<uuid4> (the third part starts with 4), "
            f"so no {kind} has this one. Copy the id from "
        )
        operator = f"{refused}the Letta server's {kind} list."
        said = f"{refused}the Letta server (`{command} {kind}s` lists them)." if command else operator
        return TargetError(said, operator)
    if error.kind == Kind.INVALID:
        return TargetError(f"the Letta server refused {what}: {error.detail or 'invalid id'}.")
    return TargetError(error.explain(what, looking_up=True), error.for_operator(what), may_pass=error.kind in PASSING)


MAX_TURNS = 50


# How each option is spelled where the person gave it: `channels connect` flags, or /letta's words (typed as
# `manager=agent-…`, or picked in the menu).
_CLI = {
    "pattern": "--pattern",
    "manager": "--manager",
    "manager_is": "--manager <agent id>",
    "max_turns": "--max-turns",
    "token": "--termination-token",
}
_SLACK = {  # in code: a sentence that starts with one must not make `max_turns` "Max_turns"
    "pattern": "a pattern",
    "manager": "`manager`",
    "manager_is": "`manager=<agent id>`",
    "max_turns": "`max_turns`",
    "token": "`termination_token`",
}


GROUP_TYPES = ("round_robin", "supervisor", "dynamic", "sleeptime")  # Letta's group types the bridge runs
# Group types whose manager answers with no member left: sleeptime asks only its main agent, a supervisor answers
# even when no worker did.
MANAGER_ANSWERS = ("supervisor", "sleeptime")


def _refusal(rule: str, **facts: object) -> TargetError:
    """One rule, worded for Slack and for the terminal: `{manager}` and the like become the option's spelling."""
    return TargetError(rule.format(**_SLACK, **facts), rule.format(**_CLI, **facts), usage=True)


def check_pattern(ids: Sequence[str], pattern: Pattern, app_server: bool) -> None:
    """The pattern's rules that need nothing from Letta, for `ids` as typed: said before anything is looked up, so
    that a command used wrongly is told so, not that Letta is down (the command line's exit 2). A group's own
    pattern is known only once it is looked up (`with_pattern`)."""
    name = pattern.name
    if name is None:
        if pattern.manager or pattern.max_turns is not None or pattern.termination_token:
            raise _refusal("{manager}, {max_turns} and {token} go with {pattern}.")
        return
    if name not in PATTERNS:
        shown = name if len(name) <= 40 else name[:39] + "…"  # said back as typed, in code: not capitalised
        raise _typed([shown], f"is not a pattern: use one of {', '.join(PATTERNS)}.")
    if len(ids) == 1 and ids[0].startswith("group-"):
        return
    _check_options(name, pattern, ids, app_server)


def _check_options(name: str, pattern: Pattern, ids: Sequence[str], app_server: bool) -> None:
    """The options' rules for a pattern the bridge plays over `ids` (a list of agents, or a round robin group's)."""
    managed = name in ("supervisor", "dynamic")
    if managed and not pattern.manager:
        raise _refusal("a {name} group needs a manager: {manager_is}, an agent not in the list.", name=name)
    if not managed and pattern.manager:
        raise _refusal("a {name} group has no manager; {manager} goes with supervisor and dynamic.", name=name)
    if pattern.max_turns is not None and name not in ("round_robin", "dynamic"):
        raise _refusal("{max_turns} goes with round_robin and dynamic, not {name}.", name=name)
    if pattern.max_turns is not None and not 1 <= pattern.max_turns <= MAX_TURNS:
        raise _refusal("{max_turns} is a number from 1 to {most}.", most=MAX_TURNS)
    if pattern.termination_token and name != "dynamic":
        raise _refusal("{token} goes with the dynamic pattern only.")
    if pattern.manager:
        if pattern.manager in ids:
            raise _refusal("the manager is listed among the agents too; name it with {manager_is} only.")
        if not is_agent_id(pattern.manager, app_server):
            raise _typed([pattern.manager], "is not an agent id of this Letta server.")


async def with_pattern(
    client: LettaClient, target: Target, pattern: Pattern, command: str | None = None
) -> Target:
    """`target` given the pattern, every rule checked (and the manager looked up) before anything is saved;
    `command` as for `resolve_target`."""
    name = pattern.name
    typed = [target.group_id] if target.kind == "group" and target.group_id else [a.id for a in target.agents]
    check_pattern(typed, pattern, client.app_server)
    if name is None:
        return target
    if target.kind == "group":
        if name == BROADCAST and target.manager_type in (None, "round_robin"):
            _check_options(name, pattern, (), client.app_server)  # as for a list: the refusal names the option
            return dataclasses.replace(target, manager_type=BROADCAST, broadcast=True)
        if name == BROADCAST:
            raise TargetError(
                f"a {target.manager_type} group has its own way of answering; broadcast is for agent lists "
                "and round-robin groups."
            )
        raise _refusal(
            "group {group} has its own pattern on the server ({kind}); to give agents a pattern of the bridge's, "
            "bind the agents themselves with {pattern}.",
            group=target.group_id,
            kind=target.manager_type,
        )
    manager = None
    if pattern.manager:
        [manager] = await _agents(client, [pattern.manager], command)
    return dataclasses.replace(
        target,
        manager_type=name,
        manager=manager,
        max_turns=pattern.max_turns,
        termination_token=pattern.termination_token or None,
        broadcast=name == BROADCAST,
    )


def _typed(ids: Sequence[str], rest: str) -> TargetError:
    """A refusal that starts with what the person typed: in Slack in code (a sentence's capital would change an
    id's `group-` into `Group-`, an agent's name `alice` into `Alice`), at the terminal as typed."""
    return TargetError(", ".join(f"`{i}`" for i in ids) + f" {rest}", ", ".join(ids) + f" {rest}", usage=True)


def check_ids(ids: Sequence[str], app_server: bool, base_url: str, kind_known: bool = True) -> None:
    """Raise TargetError when `ids` are not a group id or agent ids at all: said before anything is looked up or
    opened (the command line takes it as a command used wrongly, exit 2). Without `kind_known` (the server did
    not answer whether it is an App Server) either kind's agent ids pass."""
    if not ids:
        raise TargetError("give a group id (group-<uuid>) or one or more agent ids (agent-<uuid>).")
    if len(ids) == 1 and ids[0].startswith("group-"):
        if not is_group_id(ids[0]):
            raise _typed([ids[0]], "is not a group id: expected group-<uuid>.")
        return
    bad = [i for i in ids if not is_agent_id(i, app_server)]
    if not kind_known:
        bad = [i for i in bad if not is_app_server_agent_id(i)]
    if bad and app_server:
        raise _typed(
            bad,
            "is not an agent id of this Letta App Server: expected agent-local-<uuid> "
            "(the App Server has no groups: bind its agents, in speaking order).",
        )
    local = [i for i in bad if is_app_server_agent_id(i)]
    if local:
        raise _typed(
            local,
            f"is an agent id of a Letta App Server, but the Letta server at {shown_url(base_url)} is "
            "a REST server: point LETTA_BASE_URL at the App Server (ws://host:port) to bind its agents.",
        )
    if bad:
        hint = " (a group is bound alone, without agent ids)" if any(i.startswith("group-") for i in ids) else ""
        raise _typed(bad, f"is not an agent id: expected agent-<uuid>, or a single group-<uuid>{hint}.")
    if len(set(ids)) != len(ids):
        raise TargetError("an agent is listed twice; each agent can answer once per turn.")


async def resolve_target(client: LettaClient, ids: Sequence[str], command: str | None = None) -> Target:
    """`ids` looked up on Letta; `command`, the slash command of the person in Slack who gave them, is named where a
    refusal points to its listing (None: the words go to a terminal, and name none)."""
    check_ids(ids, client.app_server, client.base_url)
    if len(ids) == 1 and ids[0].startswith("group-"):
        return await _resolve_group(client, ids[0], command)
    agents = await _agents(client, ids, command)
    return Target(kind="agents", agents=agents)


async def _resolve_group(client: LettaClient, group_id: str, command: str | None) -> Target:
    try:
        group = await client.get_group(group_id)
    except LettaError as error:
        if error.kind == Kind.ROUTE_MISSING:
            form = "agent-local-<uuid>" if client.app_server else "agent-<uuid>"
            raise TargetError(
                f"this Letta server has no groups; bind the agents themselves, in speaking order: {form} {form} ..."
            ) from None
        raise _lookup_failed(error, f"group {group_id}", command) from None
    if group.manager_type not in GROUP_TYPES:  # voice_sleeptime, swarm: a group type the bridge has no way to run
        raise TargetError(
            f"group {group_id} is a {group.manager_type} group, which the bridge cannot run: connect a "
            f"{', '.join(GROUP_TYPES[:-1])} or {GROUP_TYPES[-1]} group, or the agents themselves."
        )
    if not group.agent_ids:
        raise TargetError(f"group {group_id} has no agents, so nobody would answer.")
    agents = await _members(client, group_id, group.agent_ids, command)
    manager_ids = [group.manager_agent_id] if group.manager_agent_id else []
    if agents:
        found = await _agents(client, manager_ids, command)
    elif group.manager_type in MANAGER_ANSWERS:  # its manager answers alone; a deleted one is refused below
        found = await _members(client, group_id, manager_ids, command)
    else:  # a round robin asks its members, a dynamic manager only picks among them
        found = ()
    manager = found[0] if found else None
    if not agents and manager is None:
        raise TargetError(
            f"All of group {group_id}'s agents were deleted on Letta, so nobody would answer: give it agents "
            "that exist, or connect agents themselves."
        )
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


async def _members(
    client: LettaClient, group_id: str, agent_ids: Sequence[str], command: str | None
) -> tuple[AgentRef, ...]:
    """A group's members that Letta knows: 0.16.8 keeps a deleted agent's id in its groups' `agent_ids`, and a
    turn leaves such a member out (letta/groups.py), so connecting the group does too."""

    async def one(agent_id: str) -> AgentRef | None:
        try:
            agent = await client.get_agent(agent_id)
        except LettaError as error:
            if error.kind != Kind.NOT_FOUND:
                raise _lookup_failed(error, f"agent {agent_id}", command) from None
            log.warning("group %s: member %s is left out: Letta no longer knows it", group_id, agent_id)
            return None
        return AgentRef(agent.id, agent.name)

    return tuple(a for a in await asyncio.gather(*(one(a) for a in agent_ids)) if a is not None)


async def _agents(client: LettaClient, agent_ids: Sequence[str], command: str | None) -> tuple[AgentRef, ...]:
    async def one(agent_id: str) -> AgentRef:
        try:
            agent = await client.get_agent(agent_id)
        except LettaError as error:
            raise _lookup_failed(error, f"agent {agent_id}", command) from None
        return AgentRef(agent.id, agent.name)

    return tuple(await asyncio.gather(*(one(a) for a in agent_ids)))
