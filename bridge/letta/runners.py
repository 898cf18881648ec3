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
from typing import Any, Protocol

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
from bridge.letta.models import AssistantMessage, LettaResponse, run_failure
from bridge.letta.recovery import find_turn, recover_turn
from bridge.letta.stream import Collector

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


def _replay(record: StepRecord) -> list[TurnEvent]:
    events: list[TurnEvent] = list(record.replies)
    if record.failure is not None:
        events.append(record.failure)
    return events


Spoken = tuple[str, str] | LettaError


async def exchange(
    client: LettaClient,
    message: dict[str, Any],
    author: str,
    streaming: bool,
    group: tuple[str, list[str]] | None = None,
    agent_id: str | None = None,
) -> AsyncIterator[Spoken]:
    """One send to a group or an agent: yields each (author, text) as soon as that speaker has finished, then
    an in-answer error if there was one. Raises LettaError only when nothing at all came back.

    Streams when asked to; a server without the stream route gets the plain send instead, and is remembered.
    """
    kind = "groups" if group is not None else "agents"
    if streaming and kind not in client.no_stream_route:
        collector = Collector(author)
        received = False
        try:
            if group is not None:
                source = client.stream_group(group[0], group[1], message)
            else:
                assert agent_id is not None
                source = client.stream_agent(agent_id, message)
            async for item in source:
                received = True
                for spoken in collector.add(item):
                    yield spoken
        except LettaError as error:
            if not received and error.kind == Kind.ROUTE_MISSING:
                client.no_stream_route.add(kind)
                log.info("letta has no %s stream route; using the plain send from now on", kind)
            elif not received:
                raise
            else:
                for spoken in collector.finish():
                    yield spoken
                yield error
                return
        else:
            for spoken in collector.finish():
                yield spoken
            return
    if group is not None:
        response = await client.send_group(group[0], group[1], message)
    else:
        assert agent_id is not None
        response = await client.send_agent(agent_id, message)
    for spoken in authored_replies(response, author):
        yield spoken
    failed = run_failure(response)
    if failed:
        yield LettaError(Kind.RUN_FAILED, failed, base_url=client.base_url)


class _Heard:
    """The replies an interrupted group turn already has: what a member asked afterwards is shown, unlabelled
    by the binding's transcript (the server keeps its group's context itself)."""

    def __init__(self, replies: list[AgentReply]) -> None:
        self.replies = replies

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int | None]:
        return [r for r in self.replies if r.agent_id != agent_id], None


class ServerRunner:
    """One group send; on a restart, a send whose outcome is unknown is looked up before it is repeated.

    A group turn cut short (the bridge died while some members had answered and others had not) is finished
    agent by agent: the members who never got the message are asked directly, shown the replies so far.
    """

    name = "server"
    STEP = "group"

    def __init__(
        self, client: LettaClient, bridge: BridgeRunner, patience: float = 120.0, streaming: bool = True
    ) -> None:
        self._client = client
        self._bridge = bridge
        self._patience = patience
        self._streaming = streaming

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        assert target.group_id is not None, "the server runner needs a group"
        record = await journal.step(self.STEP)
        if record is not None and record.state != "sending":
            for event in _replay(record):
                yield event
            async for event in self._finish(target, turn, journal, list(record.replies)):
                yield event
            return
        if record is not None and await self._recovered(target, journal, self._patience):
            async for event in self.run(target, turn, transcript, journal):
                yield event
            return
        await journal.sending(self.STEP)
        message = user_message(turn.text, turn.otid, turn.sender)
        members = [a.id for a in target.agents]
        label = target.description or "the group"
        replies: list[AgentReply] = []
        failure: AgentFailure | None = None
        try:
            async for spoken in exchange(
                self._client, message, label, self._streaming, group=(target.group_id, members)
            ):
                if isinstance(spoken, LettaError):
                    failure = AgentFailure(
                        None, spoken.explain("the group"), spoken.kind, None, spoken.request_id, self.STEP, len(replies)
                    )
                    continue
                author, text = spoken
                agent = target.agent_named(author)
                reply = AgentReply(author, text, agent.id if agent else None, self.STEP, len(replies))
                replies.append(reply)
                yield reply
        except LettaError as error:
            if error.kind == Kind.ROUTE_MISSING:
                raise
            if error.outcome_unknown and await self._recovered(target, journal, 0):
                async for event in self.run(target, turn, transcript, journal):
                    yield event
                return
            failure = AgentFailure(None, error.explain("the group"), error.kind, None, error.request_id, self.STEP)
        await journal.answered(self.STEP, replies, failure)
        if failure is not None:
            yield failure

    async def _recovered(self, target: Target, journal: Journal, patience: float) -> bool:
        """Look the send up in the members' histories; record what it got. False when no member saw it."""
        replies: list[AgentReply] = []
        missing: list[AgentRef] = []
        for agent in target.agents:
            found = await recover_turn(self._client, agent.id, journal.otid, patience)
            if found is None:
                missing.append(agent)
            elif found.texts:
                replies.append(AgentReply(agent.name, "\n\n".join(found.texts), agent.id, self.STEP, len(replies)))
        if len(missing) == len(target.agents):
            return False
        for agent in missing:
            await journal.sending(agent.id)  # owed: finished by _finish, looked up first if it comes to that
        await journal.answered(self.STEP, replies)
        return True

    async def _finish(
        self, target: Target, turn: TurnInput, journal: Journal, heard: list[AgentReply]
    ) -> AsyncIterator[TurnEvent]:
        for agent in target.agents:
            record = await journal.step(agent.id)
            if record is None:
                continue
            if record.state != "sending":
                events = _replay(record)
            else:
                events = await self._bridge._ask(agent, turn, _Heard(heard), journal, resumed=True)
            for event in events:
                if isinstance(event, AgentReply):
                    heard.append(event)
                yield event


class BridgeRunner:
    """Each agent in order; on a restart the turn resumes at the first agent that has not answered."""

    name = "bridge"

    def __init__(self, client: LettaClient, patience: float = 120.0, streaming: bool = True) -> None:
        self._client = client
        self._patience = patience
        self._streaming = streaming

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
        texts: list[str] = []
        failure: AgentFailure | None = None
        try:
            async for spoken in exchange(self._client, message, agent.name, self._streaming, agent_id=agent.id):
                if isinstance(spoken, LettaError):
                    failure = AgentFailure(
                        agent.name, spoken.explain(agent.name), spoken.kind, agent.id, spoken.request_id, agent.id, 1
                    )
                else:
                    texts.append(spoken[1])
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
        return await self._answered(agent, texts, failure, journal, upto)

    @staticmethod
    async def _answered(
        agent: AgentRef, texts: list[str], failure: AgentFailure | None, journal: Journal, upto: int | None
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
        self,
        client: LettaClient,
        default: RunnerChoice,
        version_ttl: float = 300.0,
        patience: float = 120.0,
        streaming: bool = True,
    ) -> None:
        self._client = client
        self._default = default
        self._ttl = version_ttl
        self._version: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        self.bridge = BridgeRunner(client, patience, streaming)
        self.server = ServerRunner(client, self.bridge, patience, streaming)

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
