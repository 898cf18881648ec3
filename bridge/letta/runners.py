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

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Binding,
    Journal,
    RunnerChoice,
    StepRecord,
    Target,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.client import LettaClient, user_message
from bridge.letta.errors import SERVER_WIDE, Kind, LettaError
from bridge.letta.models import ERROR_STOP_REASONS, AssistantMessage, ErrorMessage, LettaResponse
from bridge.letta.recovery import find_turn, recover_turn

log = logging.getLogger(__name__)

SERVER_RUNNER_BELOW = (0, 12, 0)
UNSEEN_HEADER = "Replies in your group since you last spoke:"


class Runner(Protocol):
    name: str

    def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]: ...


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


def _replay(record: StepRecord) -> list[TurnEvent]:
    events: list[TurnEvent] = list(record.replies)
    if record.failure is not None:
        events.append(record.failure)
    return events


class ServerRunner:
    """One group send; on a restart, a send whose outcome is unknown is looked up before it is repeated."""

    name = "server"
    STEP = "group"

    def __init__(self, client: LettaClient, patience: float = 120.0) -> None:
        self._client = client
        self._patience = patience

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        assert target.group_id is not None, "the server runner needs a group"
        record = await journal.step(self.STEP)
        if record is not None and record.state != "sending":
            for event in _replay(record):
                yield event
            return
        if record is not None:
            recovered = await self._recover(target, journal.otid, self._patience)
            if recovered is not None:
                await journal.answered(self.STEP, recovered)
                for reply in recovered:
                    yield reply
                return
        await journal.sending(self.STEP)
        message = user_message(turn.text, turn.otid, turn.sender)
        try:
            response = await self._client.send_group(target.group_id, [a.id for a in target.agents], message)
        except LettaError as error:
            if error.kind == Kind.ROUTE_MISSING:
                raise
            recovered = await self._recover(target, journal.otid, 0) if error.outcome_unknown else None
            if recovered:
                await journal.answered(self.STEP, recovered)
                for reply in recovered:
                    yield reply
                return
            refused = AgentFailure(None, error.explain("the group"), error.kind, None, error.request_id, self.STEP)
            await journal.answered(self.STEP, [], refused)
            yield refused
            return
        label = target.description or "the group"
        replies = []
        for index, (author, text) in enumerate(authored_replies(response, label)):
            agent = target.agent_named(author)
            replies.append(AgentReply(author, text, agent.id if agent else None, self.STEP, index))
        failed = run_failure(response)
        failure: AgentFailure | None = None
        if failed:
            run_error = LettaError(Kind.RUN_FAILED, failed, base_url=self._client.base_url)
            failure = AgentFailure(
                None, run_error.explain("the group"), run_error.kind, step=self.STEP, index=len(replies)
            )
        await journal.answered(self.STEP, replies, failure)
        for event in _replay(StepRecord("answered", tuple(replies), failure)):
            yield event

    async def _recover(self, target: Target, otid: str, patience: float) -> list[AgentReply] | None:
        """The group's replies from the members' histories, or None when no member ever saw the otid."""
        replies: list[AgentReply] = []
        seen = False
        for agent in target.agents:
            found = await recover_turn(self._client, agent.id, otid, patience)
            if found is None:
                continue
            seen = True
            if found.texts:
                text = "\n\n".join(found.texts)
                replies.append(AgentReply(agent.name, text, agent.id, self.STEP, len(replies)))
        return replies if seen else None


class BridgeRunner:
    """Each agent in order; on a restart the turn resumes at the first agent that has not answered."""

    name = "bridge"

    def __init__(self, client: LettaClient, patience: float = 120.0) -> None:
        self._client = client
        self._patience = patience

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        for position, agent in enumerate(target.agents):
            record = await journal.step(agent.id)
            if record is not None and record.state != "sending":
                events = _replay(record)
            else:
                events = await self._ask(agent, turn, transcript, journal, resumed=record is not None)
            for event in events:
                yield event
            stop = next((e for e in events if isinstance(e, AgentFailure) and e.kind in SERVER_WIDE), None)
            if stop is not None:
                rest = target.agents[position + 1 :]
                if rest:
                    names = ", ".join(a.name for a in rest)
                    yield AgentFailure(
                        None, f"{names} were not asked, for the same reason.", stop.kind, step="rest", index=position
                    )
                return

    async def _ask(
        self, agent: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal, resumed: bool
    ) -> list[TurnEvent]:
        unseen, upto = await transcript.unseen(agent.id)
        if resumed:
            found = await recover_turn(self._client, agent.id, journal.otid, self._patience)
            if found is not None:
                return await self._answered(agent, list(found.texts), None, journal, upto)
        await journal.sending(agent.id)
        message = user_message(compose(unseen, turn.text), turn.otid, turn.sender)
        try:
            response = await self._client.send_agent(agent.id, message)
        except LettaError as error:
            if error.outcome_unknown:
                found = await find_turn(self._client, agent.id, journal.otid)
                if found is not None and found.texts:
                    return await self._answered(agent, list(found.texts), None, journal, upto)
            refused = AgentFailure(
                agent.name, error.explain(agent.name), error.kind, agent.id, error.request_id, agent.id
            )
            await journal.answered(agent.id, [], refused)
            return [refused]
        texts = [text for _, text in authored_replies(response, agent.name)]
        failed = run_failure(response)
        failure: AgentFailure | None = None
        if failed:
            run_error = LettaError(Kind.RUN_FAILED, failed, base_url=self._client.base_url)
            failure = AgentFailure(
                agent.name, run_error.explain(agent.name), run_error.kind, agent.id, step=agent.id, index=1
            )
        return await self._answered(agent, texts, failure, journal, upto)

    @staticmethod
    async def _answered(
        agent: AgentRef, texts: list[str], failure: AgentFailure | None, journal: Journal, upto: int
    ) -> list[TurnEvent]:
        replies = [AgentReply(agent.name, "\n\n".join(texts), agent.id, agent.id, 0)] if texts else []
        await journal.answered(agent.id, replies, failure, upto)
        return _replay(StepRecord("answered", tuple(replies), failure))


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

    def __init__(
        self, client: LettaClient, default: RunnerChoice, version_ttl: float = 300.0, patience: float = 120.0
    ) -> None:
        self._client = client
        self._default = default
        self._ttl = version_ttl
        self._version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        self.server = ServerRunner(client, patience)
        self.bridge = BridgeRunner(client, patience)

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
