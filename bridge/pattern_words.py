"""Plain words for how a target answers (who answers, in what order), shared by `channels connect|list`, the
/letta answers and the binding history: a sleeptime group's listed agents never post, a broadcast's all get the
message at once, and a supervisor or dynamic group's manager answers too, so no one phrase fits all."""

from __future__ import annotations

from bridge.domain import Target

IN_ORDER = "agents, in speaking order"
_MEMBERS = {
    "sleeptime": "sleeptime agents (they never post)",
    "supervisor": "workers (the manager answers after them)",
    "dynamic": "agents (the manager picks who speaks)",
}
_BRIDGE_RUNS = {
    "sleeptime": "the bridge asks the main agent only",
    "supervisor": "the bridge asks the workers at once, then the manager",
    "dynamic": "the bridge asks the manager who speaks next",
}


def manager_role(target: Target) -> str:
    """A sleeptime group's manager is its main agent, the one that answers."""
    return "main agent" if target.manager_type == "sleeptime" else "manager"


def members_heading(target: Target) -> str:
    """What the listed agents do, lower case."""
    if target.broadcast:
        return "agents, all at once"
    return _MEMBERS.get(target.manager_type or "", IN_ORDER)


def turns_in_all(target: Target) -> int | None:
    """A round robin's `max_turns` where it is not one turn per agent (the bridge makes that many sends in all,
    going round the agents: fewer leaves the last ones unasked); None otherwise."""
    in_turn = target.manager_type in (None, "round_robin") and not target.broadcast
    if not in_turn or target.max_turns is None or target.max_turns == len(target.agents):
        return None
    return target.max_turns


def bridge_runs(target: Target) -> str:
    """How the bridge runner plays the target, for the connect answer's runner line."""
    if target.broadcast:
        return "the bridge sends every agent the message at once"
    if (turns := turns_in_all(target)) is not None:
        return f"the bridge asks the agents in turn, {turns} send{'' if turns == 1 else 's'} in all"
    return _BRIDGE_RUNS.get(target.manager_type or "", "the bridge asks each agent in turn")


def how(target: Target) -> str:
    """The pattern with its manager and limits, in plain words ("" for a plain list of agents): what tells two
    bindings of the same agents apart in the channel's history."""
    if not target.manager_type:
        return ""
    parts = [target.manager_type]
    if target.manager is not None:
        parts.append(f"{manager_role(target)} {target.manager.name} ({target.manager.id})")
    if target.max_turns is not None:
        parts.append(f"max turns {target.max_turns}")
    if target.termination_token:
        parts.append(f"termination token {target.termination_token}")
    return ", ".join(parts)
