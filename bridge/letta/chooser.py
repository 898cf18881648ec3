"""Which runner runs a binding's turn: the channel's choice, or `auto` by the server's version."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from bridge.domain import Binding, RunnerChoice, Target
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.appserver_runner import AppServerRunner
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.runners import Runner, ServerRunner

SERVER_RUNNER_BELOW = (0, 12, 0)
FEEDBACK_FROM = (0, 16, 0)  # PATCH /v1/steps/{id}/feedback with a JSON body (reference 0.16.8/steps-feedback-*)


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def group_send_broken(version: str) -> bool:
    """Letta 0.12.0 to 0.16.4 answer every group send with a 500 (a server bug)."""
    parsed = parse_version(version)
    return parsed is not None and (0, 12, 0) <= parsed < (0, 16, 5)


SERVER_BROKEN = (
    "Letta {version} answers every group send with an error (a server bug, fixed in 0.16.5), so `--runner server` "
    "cannot be used there: the bridge asks the group's agents itself (`--runner bridge` or `auto`)."
)
MANAGER_RUNS_GROUP = ("supervisor", "dynamic")
MANAGER_REFUSAL = (
    "On Letta {version} a {kind} group always runs on the server, because a message sent straight to its manager "
    "runs the whole group, so `--runner bridge` cannot be used for it there."
)


def manager_runs_group(version: str, manager_type: str | None) -> bool:
    """Below 0.12 a direct send to a supervisor's or dynamic group's manager runs its whole group (the server loads
    the manager's group): the bridge runner would ask every worker twice."""
    parsed = parse_version(version)
    return manager_type in MANAGER_RUNS_GROUP and parsed is not None and parsed < SERVER_RUNNER_BELOW


def runner_for_version(version: str) -> RunnerChoice:
    parsed = parse_version(version)
    return "server" if parsed is not None and parsed < SERVER_RUNNER_BELOW else "bridge"


@dataclass(frozen=True)
class RunnerUse:
    """A runner setting and what it resolves to now, said the same way everywhere (`channels connect`, `channels
    list`, `check`): `auto (bridge on Letta 0.16.8)`, `auto (bridge for a list of agents)`, `server`."""

    setting: RunnerChoice
    used: RunnerChoice | None  # None: not known now (the Letta server did not answer)
    why: str = ""

    def __str__(self) -> str:
        if self.used is None:
            return f"{self.setting} (not known now: the Letta server did not answer)"
        if self.used == self.setting:
            return self.setting
        return f"{self.setting} ({self.used} {self.why})"


def by_version(setting: RunnerChoice, version: str) -> RunnerUse:
    return RunnerUse(setting, runner_for_version(version), f"on Letta {version}")


def _always_bridge(target: Target) -> str | None:
    """Why a target runs on the bridge whatever its setting, if it does."""
    if target.kind == "agents":
        return "for a list of agents"
    if target.manager_type == "sleeptime":  # a sleeptime group send never finishes on 0.11.7
        return "for a sleeptime group"
    if target.broadcast:  # a bridge-run pattern
        return "for broadcast"
    return None


def resolve(binding: Binding, default: RunnerChoice, version: str | None) -> RunnerUse:
    """The binding's runner, given LETTA_GROUP_RUNNER and the server's version (None: not known, so that a binding
    whose runner depends on it resolves to nothing)."""
    forced = _always_bridge(binding.target)
    if forced is not None:
        return RunnerUse(binding.runner, "bridge", forced)
    if binding.runner != "auto":
        return RunnerUse(binding.runner, binding.runner)
    if default != "auto":
        return RunnerUse("auto", default, "by LETTA_GROUP_RUNNER")
    return by_version("auto", version) if version is not None else RunnerUse("auto", None)


class RunnerChooser:
    """Picks the runner for a binding; `auto` asks the server's version (cached for a few minutes)."""

    def __init__(
        self,
        client: LettaClient,
        default: RunnerChoice,
        version_ttl: float = 300.0,
        patience: float = 120.0,
        streaming: bool = True,
        tokens: bool = False,
        max_turns: int | None = None,
        app_server_deadline: float | None = None,
    ) -> None:
        self.client = client
        self._client = client
        self._default = default
        self._ttl = version_ttl
        self._version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        self.bridge = BridgeRunner(client, patience, streaming, tokens, max_turns)
        self.server = ServerRunner(client, self.bridge, patience, streaming, tokens, deadline=app_server_deadline)
        # A Letta App Server: every binding is a list of agents the bridge asks in turn over its socket.
        self.appserver: Runner | None = None
        if isinstance(client, AppServerLetta):
            self.appserver = AppServerRunner(
                client, tokens=streaming and tokens, deadline=app_server_deadline, max_turns=max_turns
            )

    async def server_version(self) -> str:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._version is None or now - self._version[0] > self._ttl:
                self._version = (now, (await self._client.health()).version)
            return self._version[1]

    async def step_feedback(self, step_id: str, vote: Literal["up", "down"]) -> bool:
        """Send a vote on a reply's step where the server takes one in the captured shape (REST 0.16 and later,
        Cloud); False elsewhere: the App Server has no steps, and 0.11.7 reads its feedback from the query."""
        if self.appserver is not None:
            return False
        parsed = parse_version(await self.server_version())
        if parsed is not None and parsed < FEEDBACK_FROM:
            return False
        await self._client.step_feedback(step_id, vote)
        return True

    async def use(self, binding: Binding) -> RunnerUse:
        """The binding's setting and the runner it resolves to (asking the server's version only when needed)."""
        if self.appserver is not None:
            return RunnerUse(binding.runner, "bridge", "on the Letta App Server")
        use = resolve(binding, self._default, None)
        if use.used is None:
            use = resolve(binding, self._default, await self.server_version())
        kind = binding.target.manager_type if binding.target.kind == "group" else None  # a Letta group's own
        if use.used == "bridge" and kind in MANAGER_RUNS_GROUP:
            version = await self.server_version()
            if manager_runs_group(version, kind):
                # A binding saved before, or LETTA_GROUP_RUNNER=bridge: a send to the manager runs its whole group
                # on this server, so the server runs it all the same.
                return RunnerUse(use.setting, "server", f"for a {kind} group on Letta {version}")
        return use

    async def choice(self, binding: Binding) -> RunnerChoice:
        used = (await self.use(binding)).used
        assert used is not None, "use() resolves or raises"
        return used

    async def refusal(self, binding: Binding) -> str | None:
        """Why the binding's explicit runner cannot be used on this server, in one sentence; None when it can."""
        if self.appserver is not None and binding.runner == "server":
            return "The Letta App Server has no groups to run: the bridge asks the agents in turn (`--runner auto`)."
        if binding.runner == "server" and binding.target.kind == "group":
            version = await self.server_version()
            if group_send_broken(version):
                return SERVER_BROKEN.format(version=version)
        if binding.runner != "bridge" or binding.target.manager_type not in MANAGER_RUNS_GROUP:
            return None
        if binding.target.kind != "group":  # a bridge-defined group: its manager is an agent like any other
            return None
        version = await self.server_version()
        if not manager_runs_group(version, binding.target.manager_type):
            return None
        return MANAGER_REFUSAL.format(version=version, kind=binding.target.manager_type)

    async def choose(self, binding: Binding) -> Runner:
        if self.appserver is not None:
            return self.appserver
        return self.server if await self.choice(binding) == "server" else self.bridge
