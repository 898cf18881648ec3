"""0.11.7's server-side group sends for the fake Letta server: how one send is built from agent turns and
interleaved (round_robin, supervisor, dynamic, sleeptime), as the captures groups-send-*.json show it.
The "host" (FakeLetta) runs each turn, counting it as an AgentInput, and stores the history.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tests.fakes.letta_heartbeat import memory_save
from tests.fakes.letta_shapes import Shapes, new_id, otid_from_id, wire_date

SUPERVISOR_TOOL = "send_message_to_all_agents_in_group"
Msgs = list[dict[str, Any]]


@dataclass
class GroupSpec:
    """A group as the fake stores it (the wire object comes from Shapes.group)."""

    id: str
    manager_type: str
    agent_ids: list[str]
    description: str
    manager_agent_id: str | None
    max_turns: int | None
    termination_token: str | None


class NoSpeaker(Exception):
    """The dynamic manager named nobody. Real 0.11.7 then fails the whole send with a 500."""


class TurnHost(Protocol):
    """What the group runners need from the server."""

    _saves_memory: set[str]

    def _agent_name(self, agent_id: str) -> str: ...
    def _store(self, agent_id: str, group_id: str | None, msgs: Msgs) -> None: ...
    def _begin_input(self, agent_id: str, text: str, messages: Msgs, otid: str | None, name: str | None) -> Any: ...
    def _end_input(self, inp: Any) -> None: ...
    async def _llm_delay(self, agent_id: str) -> None: ...
    def _reply_for(self, agent_id: str, text: str, default: list[str] | None = None) -> list[str]: ...
    async def _run_turn(self, agent_id: str, text: str, messages: Msgs, otid: str | None, name: str | None,
                        default: list[str] | None = None) -> list[str]: ...
    async def _hang(self) -> None: ...


async def run_round_robin(host: TurnHost, shapes: Shapes, group: GroupSpec, msgs: Msgs, text: str,
                          otid: str | None, name: str | None,
                          emit: Callable[[Msgs], Awaitable[None]] | None = None) -> tuple[Msgs, int]:
    """Members speak in agent_ids order for ``max_turns`` turns (default: one turn each).

    A later speaker's AgentInput.text is the user text plus one line "<name>: <reply>" for each
    earlier reply in this send. Its stored history shows those replies as system_message alerts,
    as on the real server.
    """
    out: Msgs = []
    steps, n = 0, len(group.agent_ids)
    produced: list[tuple[str, dict[str, Any]]] = []  # (speaker id, its assistant message)
    seen: dict[str, int] = {}  # speaker id -> how much of `produced` it has already been shown
    lines: list[str] = []
    for i in range((group.max_turns or n) if n else 0):
        aid = group.agent_ids[i % n]
        step_id = new_id("step")
        pre = [] if aid in seen else [shapes.user_copy(text, otid, name, step_id, wrapped=i > 0)]
        pre += [shapes.alert(host._agent_name(who), m["content"], step_id, m["otid"], who)
                for who, m in produced[seen.get(aid, 0):] if who != aid]
        replies = await host._run_turn(aid, "\n".join([text, *lines]), msgs, otid, name)
        speaker = host._agent_name(aid)
        turn, used = shapes.turn(replies, name=speaker, step_id=step_id, run_id=None, date=wire_date())
        saved, said = memory_save(shapes.version, step_id, None) if aid in host._saves_memory else ([], [])
        host._store(aid, group.id, pre + saved + turn)  # the member's copy of the user message lands when its step ends
        if emit is not None:  # a stream sends each speaker's messages as soon as it has spoken
            await emit([{**m, "step_id": None, "run_id": None} for m in said + turn])
        out, steps = out + said + turn, steps + used + bool(saved)
        produced += [(aid, m) for m in turn if m["message_type"] == "assistant_message"]
        seen[aid] = len(produced)
        lines += [f"{speaker}: {r}" for r in replies]
    for aid, idx in seen.items():  # earlier speakers are told what the later ones said
        host._store(aid, group.id, [shapes.alert(host._agent_name(who), m["content"], None, m["otid"], who)
                                    for who, m in produced[idx:] if who != aid])
    return out, steps


async def run_supervisor(host: TurnHost, shapes: Shapes, group: GroupSpec, msgs: Msgs, text: str,
                         otid: str | None, name: str | None) -> tuple[Msgs, int]:
    """The manager calls send_message_to_all_agents_in_group, then sends its own reply.

    The manager passes the user's text on unchanged. Workers run concurrently; each worker's
    AgentInput.text is Letta's "[Incoming message from agent with ID ...] <text>", with otid and
    name None. The manager counts as one AgentInput that spans the whole send, with one delay.
    usage.steps_messages stays null (the real server puts internal Message rows there).
    """
    mgr_id = group.manager_agent_id or ""
    mgr = host._agent_name(mgr_id)
    step1, mid1, call_id = new_id("step"), new_id("message"), f"call_{uuid.uuid4().hex[:24]}"
    inp = host._begin_input(mgr_id, text, msgs, otid, name)
    try:
        await host._llm_delay(mgr_id)
        args = json.dumps({"message": text, "request_heartbeat": False}, indent=2)
        common = {"id": mid1, "date": wire_date(), "name": mgr, "step_id": step1}
        out = [shapes.message("reasoning_message", otid=otid_from_id(mid1, 0), **common),
               shapes.message("tool_call_message", otid=otid_from_id(mid1, 1), **common,
                              tool_call={"name": SUPERVISOR_TOOL, "arguments": args, "tool_call_id": call_id})]
        incoming = (f"[Incoming message from agent with ID '{mgr_id}' - to reply to this message, make sure to use "
                    f"the 'send_message' at the end, and the system will notify the sender of your response] {text}")
        results = await asyncio.gather(*(_supervised(host, shapes, mgr, a, incoming, msgs) for a in group.agent_ids))
        said = json.dumps([f"{aid} said: '{reply}'" for aid, reply in zip(group.agent_ids, results, strict=True)])
        mid2 = new_id("message")
        out.append(shapes.message("tool_return_message", id=mid2, otid=otid_from_id(mid2, 0), date=wire_date(),
                                  name=SUPERVISOR_TOOL, step_id=step1, tool_return=said, tool_call_id=call_id))
        final, used = shapes.turn(host._reply_for(mgr_id, text), name=mgr, step_id=new_id("step"), run_id=None,
                                  date=wire_date())
        out += final
        # The manager's first step spans its tool call, so the user message lands with the whole answer.
        host._store(mgr_id, group.id, [shapes.user_copy(text, otid, name, step1, wrapped=False), *out])
    finally:
        host._end_input(inp)
    return out, 1 + used


async def _supervised(host: TurnHost, shapes: Shapes, mgr: str, agent_id: str, incoming: str, msgs: Msgs) -> str:
    """One worker turn under a supervisor; returns its replies joined for the tool_return."""
    step_id = new_id("step")
    replies = await host._run_turn(agent_id, incoming, msgs, None, None)
    turn, _ = shapes.turn(replies, name=host._agent_name(agent_id), step_id=step_id, run_id=None, date=wire_date())
    host._store(agent_id, None, [shapes.alert(mgr, incoming, step_id), *turn])
    return "\n".join(replies)


async def run_dynamic(host: TurnHost, shapes: Shapes, group: GroupSpec, msgs: Msgs, text: str,
                      otid: str | None, name: str | None) -> tuple[Msgs, int]:
    """The manager names the next speaker, then that worker speaks, for up to ``max_turns`` rounds (default: members).

    - The manager's reply is its set_reply if it has one. Otherwise it names the members in turn.
    - The first member whose name appears in that reply speaks. If none does, NoSpeaker is raised (the server's 500).
    - A reply that contains termination_token ends the send.
    - The manager and the worker both get the user text plus the "<name>: <reply>" lines so far.
    """
    mgr_id = group.manager_agent_id or ""
    out: Msgs = []
    lines: list[str] = []
    steps, spoke, n = 0, set(), len(group.agent_ids)
    pending = [shapes.user_copy(text, otid, name, new_id("step"), wrapped=False)]  # lands with the first step
    for i in range((group.max_turns or n) if n else 0):
        so_far = "\n".join([text, *lines])
        default = [host._agent_name(group.agent_ids[i % n])]
        choice = ((await host._run_turn(mgr_id, so_far, msgs, otid, name, default)) or [""])[0]
        turn, used = shapes.turn([choice], name=host._agent_name(mgr_id), step_id=new_id("step"), run_id=None,
                                 date=wire_date())
        host._store(mgr_id, group.id, pending + turn)
        pending = []
        out, steps = out + turn, steps + used
        speaker = next((a for a in group.agent_ids if host._agent_name(a).lower() in choice.lower()), None)
        if speaker is None:
            raise NoSpeaker(choice)
        step_id = new_id("step")
        copy_ = [] if speaker in spoke else [shapes.user_copy(text, otid, name, step_id, wrapped=False)]
        spoke.add(speaker)
        replies = await host._run_turn(speaker, so_far, msgs, otid, name)
        turn, used = shapes.turn(replies, name=host._agent_name(speaker), step_id=step_id, run_id=None,
                                 date=wire_date())
        host._store(speaker, group.id, copy_ + turn)
        out, steps = out + turn, steps + used
        lines += [f"{host._agent_name(speaker)}: {r}" for r in replies]
        if group.termination_token and any(group.termination_token in r for r in replies):
            break
    return out, steps


async def run_sleeptime(host: TurnHost, shapes: Shapes, group: GroupSpec, msgs: Msgs, text: str,
                        otid: str | None, name: str | None) -> tuple[Msgs, int]:
    """The main agent answers (stored in its history), but the request never completes, as in 0.11.7."""
    if group.manager_agent_id:
        mgr_id, step_id = group.manager_agent_id, new_id("step")
        replies = await host._run_turn(mgr_id, text, msgs, otid, name)
        turn, _ = shapes.turn(replies, name=host._agent_name(mgr_id), step_id=step_id, run_id=None, date=wire_date())
        host._store(mgr_id, group.id, [shapes.user_copy(text, otid, name, step_id, wrapped=False), *turn])
    await host._hang()
    raise AssertionError("unreachable: _hang() never returns")


GROUP_RUNNERS = {"round_robin": run_round_robin, "supervisor": run_supervisor, "dynamic": run_dynamic,
                 "sleeptime": run_sleeptime}
