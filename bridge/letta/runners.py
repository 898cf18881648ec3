"""The two ways of running a group's turn, behind one interface, and choosing between them.

- `ServerRunner`: one `POST /v1/groups/{id}/messages`; the server runs the group (Letta up to 0.11).
- `BridgeRunner`: the bridge sends to each agent in turn over `POST /v1/agents/{id}/messages`, showing
  each agent the group replies it has not seen yet (works on every server, and for agent-list bindings).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from bridge.domain import AgentFailure, AgentReply, Binding, RunnerChoice, Target, Transcript, TurnEvent, TurnInput
from bridge.letta.client import LettaClient, user_message
from bridge.letta.errors import SERVER_WIDE, Kind, LettaError
from bridge.letta.models import ERROR_STOP_REASONS, AssistantMessage, ErrorMessage, LettaResponse

log = logging.getLogger(__name__)

SERVER_RUNNER_BELOW = (0, 12, 0)
UNSEEN_HEADER = "Replies in your group since you last spoke:"


class Runner(Protocol):
    name: str

    def run(self, target: Target, turn: TurnInput, transcript: Transcript) -> AsyncIterator[TurnEvent]: ...


def compose(unseen: Sequence[AgentReply], text: str) -> str:
    """The documented bridge-runner format: unseen group replies, each labelled, then the user's message."""
    if not unseen:
        return text
    lines = [UNSEEN_HEADER, *(f"[{reply.agent_name}] {reply.text}" for reply in unseen), "", text]
    return "\n".join(lines)


def authored_replies(response: LettaResponse, default_author: str) -> list[tuple[str, str]]:
    """(author, text) per agent in speaking order; consecutive messages of one author are joined.

    Group replies name their author in `name`; direct agent replies have `name: null`.
    """
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for message in response.messages:
        if not isinstance(message, AssistantMessage):
            continue
        key = message.otid or f"{message.id}:{len(out)}"
        if key in seen:
            continue
        seen.add(key)
        text = message.text.strip()
        if not text:
            continue
        author = message.name or default_author
        if out and out[-1][0] == author:
            out[-1] = (author, out[-1][1] + "\n\n" + text)
        else:
            out.append((author, text))
    return out


def run_failure(response: LettaResponse) -> str | None:
    """An error reported inside a 200 answer, in its own words, or None."""
    for message in response.messages:
        if isinstance(message, ErrorMessage):
            return message.message or message.detail or message.error_type or "error"
    if response.stop_reason and response.stop_reason.stop_reason in ERROR_STOP_REASONS:
        return f"stop reason {response.stop_reason.stop_reason}"
    return None


class ServerRunner:
    name = "server"

    def __init__(self, client: LettaClient) -> None:
        self._client = client

    async def run(self, target: Target, turn: TurnInput, transcript: Transcript) -> AsyncIterator[TurnEvent]:
        assert target.group_id is not None, "the server runner needs a group"
        message = user_message(turn.text, turn.otid, turn.sender)
        response = await self._client.send_group(target.group_id, [a.id for a in target.agents], message)
        label = target.description or "the group"
        for author, text in authored_replies(response, label):
            agent = target.agent_named(author)
            yield AgentReply(author, text, agent.id if agent else None)
        failure = run_failure(response)
        if failure:
            error = LettaError(Kind.RUN_FAILED, failure, base_url=self._client.base_url)
            yield AgentFailure(None, error.explain("the group"), error.kind)


class BridgeRunner:
    name = "bridge"

    def __init__(self, client: LettaClient) -> None:
        self._client = client

    async def run(self, target: Target, turn: TurnInput, transcript: Transcript) -> AsyncIterator[TurnEvent]:
        for index, agent in enumerate(target.agents):
            unseen, upto = await transcript.unseen(agent.id)
            message = user_message(compose(unseen, turn.text), turn.otid, turn.sender)
            try:
                response = await self._client.send_agent(agent.id, message)
            except LettaError as error:
                yield AgentFailure(agent.name, error.explain(agent.name), error.kind, agent.id, error.request_id)
                if error.kind in SERVER_WIDE:
                    rest = target.agents[index + 1 :]
                    if rest:
                        names = ", ".join(a.name for a in rest)
                        yield AgentFailure(None, f"{names} were not asked, for the same reason.", error.kind)
                    return
                continue
            texts = [text for _, text in authored_replies(response, agent.name)]
            reply = AgentReply(agent.name, "\n\n".join(texts), agent.id) if texts else None
            await transcript.delivered(agent.id, upto, reply)
            if reply is not None:
                yield reply
            failure = run_failure(response)
            if failure:
                failed = LettaError(Kind.RUN_FAILED, failure, base_url=self._client.base_url)
                yield AgentFailure(agent.name, failed.explain(agent.name), failed.kind, agent.id)


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


class RunnerChooser:
    """Picks the runner for a binding; `auto` asks the server's version (cached for a few minutes)."""

    def __init__(self, client: LettaClient, default: RunnerChoice, version_ttl: float = 300.0) -> None:
        self._client = client
        self._default = default
        self._ttl = version_ttl
        self._version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        self.server = ServerRunner(client)
        self.bridge = BridgeRunner(client)

    async def server_version(self) -> str:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._version is None or now - self._version[0] > self._ttl:
                self._version = (now, (await self._client.health()).version)
            return self._version[1]

    async def choice(self, binding: Binding) -> RunnerChoice:
        if binding.target.kind == "agents":
            return "bridge"
        choice = binding.runner if binding.runner != "auto" else self._default
        if choice == "auto":
            choice = runner_for_version(await self.server_version())
        return choice

    async def choose(self, binding: Binding) -> Runner:
        return self.server if await self.choice(binding) == "server" else self.bridge
