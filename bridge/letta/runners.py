"""The two ways of running a group's turn, behind one interface (chooser.py picks one per binding).

- `ServerRunner`: one `POST /v1/groups/{id}/messages`; the server runs the group (Letta up to 0.11).
- `BridgeRunner` (`bridge_runner.py`): the bridge sends to each agent in turn over
  `POST /v1/agents/{id}/messages`, showing each agent the group replies it has not seen yet (works on every
  server, and for agent-list bindings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Protocol

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Journal,
    Target,
    ToolProgress,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked, attribute, exchange
from bridge.letta.locks import LeftGoing
from bridge.letta.patterns import UNSEEN_HEADER, compose, replay
from bridge.letta.recovery import watch_group
from bridge.letta.send_parts import refused
from bridge.letta.wire import user_message

__all__ = ["UNSEEN_HEADER", "BridgeRunner", "Runner", "ServerRunner", "compose", "replay"]

log = logging.getLogger(__name__)

MEMBERS_AFTER = 30.0  # seconds a group send may stay silent before its members are looked up


class Runner(Protocol):
    name: str

    def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]: ...


class _Heard:
    """The replies an interrupted group turn already has: what a member asked afterwards is shown, unlabelled
    by the binding's transcript (the server keeps its group's context itself)."""

    def __init__(self, replies: list[AgentReply]) -> None:
        self.replies = replies

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int | None]:
        return [r for r in self.replies if r.agent_id != agent_id], None


def group_left(client: LettaClient, target: Target, otid: str, until: float) -> LeftGoing:
    """Waits for a group send cut short, which Letta goes on with and lists no run for: its members watched as
    after a crash (`watch_group`), until every member the send reached has answered it, or the event loop's clock
    passes `until` (the send's time and LETTA_RECOVERY_WAIT_SECONDS: no member's step lasts longer)."""

    async def ended() -> None:
        log.info("a group send cut short may still run: its members are watched group=%s", target.group_id)
        try:
            await watch_group(client, target, otid, max(0.0, until - asyncio.get_running_loop().time()))
        except LettaError as error:  # the send that waits will meet the same trouble, and say it
            log.warning("group send cut short not looked up group=%s kind=%s", target.group_id, error.kind)

    return ended


class ServerRunner:
    """One group send; on a restart, a send whose outcome is unknown is looked up before it is repeated.

    A group turn cut short (the bridge died while some members had answered and others had not) is finished
    agent by agent: the members who never got the message are asked directly, shown the replies so far.
    """

    name = "server"
    STEP = "group"

    def __init__(
        self,
        client: LettaClient,
        bridge: BridgeRunner,
        patience: float = 120.0,
        streaming: bool = True,
        tokens: bool = False,
        deadline: float | None = None,
    ) -> None:
        self._client = client
        self._bridge = bridge
        self._patience = patience
        self._streaming = streaming
        self._tokens = tokens
        # Seconds a group send may stay silent before its members are looked up: a quarter of the turn's deadline.
        self._members_after = min(MEMBERS_AFTER, deadline / 4) if deadline else MEMBERS_AFTER

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        target = await self._bridge.details.complete(target, limits=False)
        assert target.group_id is not None, "the server runner needs a group"
        record = await journal.step(self.STEP)
        if record is not None and record.state != "sending":
            for event in replay(record):
                yield event
            async for event in self._finish(target, turn, journal, list(record.replies)):
                yield event
            return
        if record is not None and await self._recovered(target, journal, self._wait(record.since)):
            async for event in self.run(target, turn, transcript, journal):
                yield event
            return
        # No member has the message `patience` seconds after it was sent: a group send lists no run, but no member's
        # step lasts that long, so it never reached Letta (docs/guarantees.md) and is sent again.
        await journal.sending(self.STEP)
        message = user_message(turn.text, turn.otid, turn.sender, turn.images)
        members = [a.id for a in (*target.agents, *((target.manager,) if target.manager else ()))]  # all locked
        label = target.description or "the group"
        replies: list[AgentReply] = []
        failure: AgentFailure | None = None
        cut: LettaError | None = None  # the stream lost on the way: the group goes on at Letta

        async def draft(author: str, text: str) -> None:
            growing = attribute(target, author, text, self.STEP, len(replies))
            if growing is not None and turn.drafts is not None:
                await turn.drafts.grow(self.STEP, len(replies), growing.agent_name, text)

        async def tool(author: str, progress: ToolProgress) -> None:
            caller = attribute(target, author, "", self.STEP, len(replies))
            if caller is not None and turn.drafts is not None:
                await turn.drafts.tool(self.STEP, len(replies), caller.agent_name, progress)

        task, gone = asyncio.current_task(), list[tuple[AgentRef, LettaError]]()

        async def look_at_members() -> None:
            """A send silent past `members_after`: a member Letta no longer knows makes 0.11.x never answer."""
            await asyncio.sleep(self._members_after)
            found = None if replies else await self._member_gone(target)
            if found is not None and not replies and task is not None:
                gone.append(found)
                task.cancel()

        looking = asyncio.create_task(look_at_members())
        try:
            async for spoken in exchange(
                self._client,
                message,
                label,
                self._streaming,
                group=(target.group_id, members),
                tokens=self._tokens,
                draft=draft if turn.drafts is not None else None,
                tools=tool if turn.drafts is not None else None,
                left=self._left(target, turn.otid),
            ):
                if isinstance(spoken, Asked):
                    continue  # a group send (Letta 0.11) never asks: approvals came later, on agent sends
                if isinstance(spoken, LettaError) and spoken.outcome_unknown:
                    cut = spoken
                    continue
                if isinstance(spoken, LettaError):
                    failure = AgentFailure(
                        None, spoken.explain("the group"), spoken.kind, None, spoken.request_id, self.STEP,
                        len(replies), target_gone=spoken.target_gone,
                    )
                    continue
                reply = attribute(target, spoken.author, spoken.text, self.STEP, len(replies), spoken.notes)
                if reply is None or (not reply.text and any(r.agent_name == reply.agent_name for r in replies)):
                    continue
                replies.append(reply)
                yield reply
        except LettaError as error:
            if error.kind == Kind.ROUTE_MISSING:
                raise
            if error.outcome_unknown:
                cut = error
            else:
                failure = AgentFailure(
                    None, error.explain("the group"), error.kind, None, error.request_id, self.STEP,
                    target_gone=error.target_gone,
                )
        except asyncio.CancelledError:
            if not gone or task is None or task.uncancel() > 0:  # a stop, a shutdown: not the members' look
                raise
            member, unknown = gone[0]
            for event in await refused(member, self.STEP, unknown, journal):
                yield event
            return
        finally:
            looking.cancel()
        if cut is not None:
            # Cut before the answer or during it: the members' histories say what each said (those replies
            # already posted keep their numbers, so none is posted twice).
            if await self._recovered(target, journal, self._patience):
                async for event in self.run(target, turn, transcript, journal):
                    yield event
                return
            failure = AgentFailure(
                None, cut.explain("the group"), cut.kind, None, cut.request_id, self.STEP, len(replies),
                target_gone=cut.target_gone,
            )
        await journal.answered(self.STEP, replies, failure)
        if failure is not None:
            yield failure

    async def _member_gone(self, target: Target) -> tuple[AgentRef, LettaError] | None:
        """A member Letta no longer knows, with its refusal: 0.11.x still lists a deleted agent in its group, and
        a send to the group then never answers (observed on a real 0.11.7), so every mention waited for its
        deadline and was never told why. Looked up only for a send silent that long, never in a burst's way."""
        members = [*target.agents, *((target.manager,) if target.manager else ())]
        looked = await asyncio.gather(*(self._client.get_agent(a.id) for a in members), return_exceptions=True)
        for agent, found in zip(members, looked, strict=True):
            if isinstance(found, LettaError) and found.target_gone:
                return agent, found
        return None

    def _left(self, target: Target, otid: str) -> LeftGoing:
        """How a later send to one of the members waits for this group send, should it be cut short (a Stop, the
        deadline, the grace run out): Letta goes on with it and lists no run (`group_left`)."""
        return group_left(self._client, target, otid, asyncio.get_running_loop().time() + self._patience)

    def _wait(self, since: datetime | None) -> float:
        """How much longer to watch the members: up to `patience` seconds after the send was journaled."""
        if since is None:
            return self._patience
        return max(0.0, self._patience - (datetime.now(UTC) - since).total_seconds())

    async def _recovered(self, target: Target, journal: Journal, patience: float) -> bool:
        """Look the send up in the members' histories; record what it got, one reply per message as the live stream
        numbered them (the outbox keys a reply by that number). False when no member saw it.

        A group send lists no run on the servers that run groups (0.11.x), and each member stores the user's
        message only when its own step ends: so the members are watched until every one the send reached has
        answered, for up to `patience` seconds (reference/letta/README.md §19).
        A supervisor's or dynamic group's manager holds the user's message first (a supervisor's workers only
        ever see the manager's words): when the manager has it, the send happened, and nobody is owed a direct
        ask; a supervisor's workers are read back from the manager's tool return.
        """
        manager = target.manager if target.manager_type in ("supervisor", "dynamic") else None
        said, seen = await watch_group(self._client, target, journal.otid, patience)
        replies: list[AgentReply] = []
        if manager is not None:
            if said is None:
                return False
            for agent_id, text in said.workers:
                reply = attribute(target, agent_id, text, self.STEP, len(replies))
                if reply is not None and text:
                    replies.append(reply)
            if target.manager_type == "dynamic":
                for agent in target.agents:
                    found = seen.get(agent.id)
                    for text in found.texts if found is not None else ():
                        replies.append(AgentReply(agent.name, text, agent.id, self.STEP, len(replies)))
            else:
                for text in said.texts:
                    replies.append(AgentReply(manager.name, text, manager.id, self.STEP, len(replies)))
            await journal.answered(self.STEP, replies)
            return True
        if not seen:
            return False
        missing: list[AgentRef] = []
        for agent in target.agents:
            found = seen.get(agent.id)
            if found is None:
                missing.append(agent)
            else:
                for text in found.texts:  # one reply per message, numbered as the live stream numbered them
                    replies.append(AgentReply(agent.name, text, agent.id, self.STEP, len(replies)))
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
                events = replay(record)
            else:
                events = await self._bridge._ask(agent, turn, _Heard(heard), journal, True, since=record.since)
            for event in events:
                if isinstance(event, AgentReply):
                    heard.append(event)
                yield event
