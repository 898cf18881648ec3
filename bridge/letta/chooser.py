"""Which runner runs a binding's turn: the channel's choice, or `auto` by the server's version."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from bridge.domain import Binding, RunnerChoice, Target
from bridge.letta.client import LettaClient
from bridge.letta.runners import BridgeRunner, Runner, ServerRunner

SERVER_RUNNER_BELOW = (0, 12, 0)


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def group_send_broken(version: str) -> bool:
    """Letta 0.12.0 to 0.16.4 answer every group send with a 500 (a server bug)."""
    parsed = parse_version(version)
    return parsed is not None and (0, 12, 0) <= parsed < (0, 16, 5)


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
    ) -> None:
        self.client = client
        self._client = client
        self._default = default
        self._ttl = version_ttl
        self._version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        self.bridge = BridgeRunner(client, patience, streaming, tokens, max_turns)
        self.server = ServerRunner(client, self.bridge, patience, streaming, tokens)

    async def server_version(self) -> str:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._version is None or now - self._version[0] > self._ttl:
                self._version = (now, (await self._client.health()).version)
            return self._version[1]

    async def use(self, binding: Binding) -> RunnerUse:
        """The binding's setting and the runner it resolves to (asking the server's version only when needed)."""
        use = resolve(binding, self._default, None)
        return use if use.used is not None else resolve(binding, self._default, await self.server_version())

    async def choice(self, binding: Binding) -> RunnerChoice:
        used = (await self.use(binding)).used
        assert used is not None, "use() resolves or raises"
        return used

    async def choose(self, binding: Binding) -> Runner:
        return self.server if await self.choice(binding) == "server" else self.bridge
