"""The fake Letta server's side for tests (tests/fakes/letta.py): agents, groups and replies set up, failures
asked for, and what it saw read back. A mixin of FakeLetta: it reads and changes the server's own state.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from . import letta_groups as G
from . import letta_shapes as S
from . import letta_tools
from .letta_records import SEND_PATH, Agent, AgentInput, Recorded, ReplySpec, Rule
from .letta_shapes import new_id


class LettaControls:
    # ---------------------------------------------------------------- test-side setup
    @property
    def version(self) -> str:
        return self._version

    def set_version(self, version: str) -> None:
        """Switch the Letta version the fake plays (e.g. to test an upgrade under a running bridge)."""
        if version not in S.VERSIONS:
            raise ValueError(f"unknown Letta version {version!r}; known: {S.VERSIONS}")
        with self._lock:
            self._version = version

    def add_agent(self, name: str, agent_id: str | None = None) -> str:
        """Create an agent; ids must look like agent-<uuid4>, or the fake answers as for a malformed id."""
        aid = agent_id or new_id("agent")
        with self._lock:
            self._agents[aid] = Agent(aid, name, datetime.now(UTC), new_id("message"))
            self._hist.setdefault(aid, [])
            self._inflight.setdefault(aid, [])
        return aid

    def remove_agent(self, agent_id: str) -> None:
        """The agent deleted on Letta: its lookups and sends answer 404 `Agent ... not found`."""
        with self._lock:
            self._agents.pop(agent_id, None)

    def add_group(self, agent_ids: list[str], manager_type: str = "round_robin", description: str = "",
                  group_id: str | None = None, manager_agent_id: str | None = None,
                  max_turns: int | None = None, termination_token: str | None = None) -> str:
        """Create a group. A dynamic group gets Letta's default termination token "DONE!"."""
        if manager_type == "dynamic" and termination_token is None:
            termination_token = "DONE!"
        gid = group_id or new_id("group")
        with self._lock:
            self._groups[gid] = G.GroupSpec(gid, manager_type, list(agent_ids), description, manager_agent_id,
                                       max_turns, termination_token)
        return gid

    def set_group_members(self, group_id: str, agent_ids: list[str]) -> None:
        """The group's members changed on Letta (`PATCH /v1/groups/{id}` with `agent_ids`: a real 0.11.7 answers
        200 with the new list, and runs the group with it)."""
        with self._lock:
            self._groups[group_id].agent_ids = list(agent_ids)

    def set_reply(self, agent_id: str, reply: ReplySpec) -> None:
        """What the agent answers. A callable gets the text the agent received. A list gives several messages."""
        with self._lock:
            self._replies[agent_id] = reply

    def set_tools(self, agent_id: str, tools: list[letta_tools.Tool]) -> None:
        """0.16.8: the agent calls these tools ((name, succeeds)) in turn before each reply (letta_tools.py)."""
        with self._lock:
            self._tools[agent_id] = list(tools)

    def set_saves_memory(self, agent_id: str) -> None:
        """The agent saves to memory (`memory_insert`, `request_heartbeat: true`) before each reply: 0.11.7 stores
        a heartbeat user message in its history after the tool's return (letta_heartbeat.py)."""
        with self._lock:
            self._saves_memory.add(agent_id)

    def set_delay(self, agent_id: str, seconds: float) -> None:
        """Simulated LLM time for each turn of that agent."""
        with self._lock:
            self._delays[agent_id] = seconds

    def ask_approval(self, agent_id: str, *calls: tuple[str, str], said: str = "") -> None:
        """The agent's next message is answered with a request to run these tools (name, JSON arguments), which
        waits for a decision (0.16.8, letta_approvals.py); `said`: words the agent says first, in the same answer."""
        with self._lock:
            self.approval_state.asks.setdefault(agent_id, []).append(list(calls))
            self.approval_state.said.setdefault(agent_id, []).append(said)

    def ask_approval_next(self, agent_id: str, *calls: tuple[str, str]) -> None:
        """After the next decision's tool return, the agent's model calls these tools too: another request."""
        with self._lock:
            self.approval_state.then.setdefault(agent_id, []).append(list(calls))

    def approval_decisions(self) -> list[dict[str, Any]]:
        """Every `approval` message the fake received, in order."""
        with self._lock:
            return copy.deepcopy(self.approval_state.decisions)

    def fail_next(self, method: str, path_regex: str, status: int, body: Any = None,
                  headers: dict[str, str] | None = None, times: int = 1, delay: float = 0.0,
                  raw: bytes | None = None) -> None:
        """Answer the next ``times`` matching requests with this failure before any other handling.

        ``method`` "*" matches any method, and ``path_regex`` is fullmatched against the path without
        its query. When body is None the 0.11.7 500 body is sent. ``raw`` sends those exact bytes instead.
        """
        with self._lock:
            self._rules.append(Rule("fail", method.upper(), re.compile(path_regex), times, status,
                                     body, headers, delay, raw))

    def gateway_next(self, method: str, path_regex: str, status: int, raw: bytes, headers: dict[str, str],
                     times: int = 1) -> None:
        """The next ``times`` matching requests pass through a gateway that forwards each to Letta, which runs it
        and stores the turn, and then answers ``status`` with these bytes and headers of its own
        (letta_gateway.py): a Cloudflare 524, an Envoy 503 after the upstream reset."""
        with self._lock:
            self._rules.append(Rule("gateway", method.upper(), re.compile(path_regex), times, status,
                                     None, headers, 0.0, raw))

    def busy_next(self, conversation_id: str, times: int = 1, delay: float = 0.0) -> None:
        """The next ``times`` sends to the conversation get the 409 a Redis-backed 0.16.8 gives while another
        run holds it (captured body, a fresh run_id each time), `delay` seconds after each arrived."""
        with self._lock:
            self._rules.append(Rule("busy", "POST", re.compile(rf"/v1/conversations/{conversation_id}/messages"),
                                     times, 409, delay=delay))

    def hang_next(self, method: str, path_regex: str, times: int = 1) -> None:
        """Accept the next ``times`` matching requests and never answer them (until stop())."""
        with self._lock:
            self._rules.append(Rule("hang", method.upper(), re.compile(path_regex), times))

    # ---------------------------------------------------------------- test-side inspection
    @property
    def requests(self) -> list[Recorded]:
        """Copies of every request so far, in arrival order."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def sends(self) -> list[Recorded]:
        """Only the POST .../messages sends (agents and groups)."""
        return [r for r in self.requests if r.method == "POST" and SEND_PATH.fullmatch(r.path)]

    @property
    def inputs(self) -> list[AgentInput]:
        """Copies of every agent turn that ran, in start order."""
        with self._lock:
            return copy.deepcopy(self._inputs)

    @property
    def overlaps(self) -> list[tuple[str, AgentInput, AgentInput]]:
        """Pairs of turns that ran at the same time on one agent (a real server allows it silently)."""
        with self._lock:
            return copy.deepcopy(self._overlaps)

    def active_runs(self) -> list[str]:
        """The ids of the runs a real server would list as active now."""
        with self._lock:
            return [r.id for r in self._runs.values() if r.active]

    @property
    def conversations(self) -> dict[str, dict[str, Any]]:
        """Copies of the conversations created so far, by id."""
        with self._lock:
            return copy.deepcopy(self._conversations)

    def conversation_history(self, conversation_id: str | None, agent_id: str | None = None) -> list[dict[str, Any]]:
        """The conversation's stored messages, oldest first (its system_message included); with None and an
        agent id, that agent's own (`default`) thread."""
        with self._lock:
            return [copy.deepcopy(s.msg) for aid, items in self._hist.items() for s in items
                    if s.conversation == conversation_id and (agent_id is None or aid == agent_id)]

    def _background(self, work: Awaitable[None]) -> None:
        """Work that goes on after its request is gone (a background run)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def history(self) -> dict[str, list[dict[str, Any]]]:
        """Copies of each agent's stored messages (0.16.x GET also shows a leading system_message)."""
        with self._lock:
            return {aid: [copy.deepcopy(s.msg) for s in items] for aid, items in self._hist.items()}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until it is true; raise AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.01)
