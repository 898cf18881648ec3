"""`AppServerRunner`: a binding's agents asked in turn over the Letta App Server (one WebSocket, no REST).

The App Server has no groups, so a binding is an ordered list of agents, asked one each, in order, as
`BridgeRunner` asks an agent list: each agent is shown the replies of the thread it has not seen yet
(`patterns.compose`, the documented format) ahead of the person's message. Each agent answers in the Slack
thread's own conversation (one per thread and agent, made and stored before the first send, never `default`).

No send is ever made twice: the step is journaled `sending` before it, and after a restart a step still
`sending` is looked up in its conversation's history by its otid (`find_send`): not there, it never reached
the server and is sent; there, its stored reply is taken and the thread's conversation with that agent is
replaced (a turn cut by a closed socket leaves it stuck on 0.34.12). A conversation the server holds stuck ("already has
an active run", until it restarts) is replaced by a new one for the thread, and the message sent once more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Journal,
    Note,
    StepRecord,
    Target,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.appserver import Finished, Reasoning, TextDelta, ToolCalled, ToolDenied, ToolReturned
from bridge.letta.appserver import conversation_stuck as stuck
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.errors import Kind, LettaError
from bridge.letta.patterns import compose, step_otid
from bridge.letta.runners import in_order, refused, replay, speaking_order

log = logging.getLogger(__name__)

CUT_OFF = "{agent}'s answer was cut off when the bridge stopped; nothing more of it was kept."


@dataclass
class _Heard:
    """What one send got: the agent's messages, its notes, and the error its turn ended with."""

    texts: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    error: LettaError | None = None


class AppServerRunner:
    name = "app-server"

    def __init__(self, client: AppServerLetta, tokens: bool = False, deadline: float | None = None) -> None:
        self._client = client
        self._tokens = tokens  # token streaming: replies grow in their drafts
        self._deadline = deadline

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        async def ask(agent: AgentRef, key: str) -> list[TurnEvent]:
            return await self.step(agent, turn, transcript, journal, key)

        async for event in in_order(speaking_order(target), ask):
            yield event

    async def step(
        self, agent: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal, key: str
    ) -> list[TurnEvent]:
        record = await journal.step(key)
        if record is not None and record.state != "sending":
            return replay(record)
        unseen, upto = await transcript.unseen(agent.id)
        otid = journal.otid if key == agent.id else step_otid(journal.otid, key)
        try:
            if turn.threads is None:
                raise LettaError(Kind.INVALID, "the App Server needs a conversation per Slack thread")
            conversation = await turn.threads.conversation(agent.id)
            if conversation is None:
                raise LettaError(Kind.INVALID, "no conversation for the thread")
            if record is not None:  # sent before a restart, or not: its conversation's history says
                found = await self._client.app.find_send(conversation, otid)
                if found is not None:
                    log.info("app server: send found after a restart otid=%s agent=%s", otid, agent.id)
                    # Its turn was running when the bridge's socket closed: 0.34.12 then holds the conversation
                    # stuck until the server restarts (and queues behind the dying turn before that), so the
                    # thread's next turn goes to a new one.
                    with contextlib.suppress(LettaError):
                        await turn.threads.renew(agent.id, conversation)
                    failure = None
                    if not found.replies:
                        failure = AgentFailure(agent.name, CUT_OFF.format(agent=agent.name), Kind.RUN_FAILED,
                                               agent.id, "", key, 1)
                    return await self._answered(agent, key, list(found.replies), (), failure, journal, upto)
        except LettaError as error:  # nothing was sent
            return await refused(agent, key, error, journal)
        await journal.sending(key)
        text = compose(unseen, turn.text)
        async with self._client.locks.hold([conversation]):  # a conversation's own lock, as on REST servers
            heard = await self._send(agent, key, conversation, text, otid, turn)
            if heard.error is not None and not heard.texts and _renew(heard.error):
                # Stuck until the server restarts, or gone: nothing of this message was stored or run there.
                assert turn.threads is not None
                try:
                    conversation = await turn.threads.renew(agent.id, conversation)
                except LettaError as error:
                    return await refused(agent, key, error, journal)
                heard = await self._send(agent, key, conversation, text, otid, turn)
        failure = None
        if heard.error is not None:
            failed = heard.error
            explained = failed.explain(agent.name)
            failure = AgentFailure(agent.name, explained, failed.kind, agent.id, failed.request_id, key, 1)
        if heard.error is not None and not heard.texts and heard.error.outcome_unknown:
            stored = await self._find(conversation, otid)  # the answer was lost on the way: history may have it
            if stored:
                return await self._answered(agent, key, stored, (), None, journal, upto)
        return await self._answered(agent, key, heard.texts, tuple(heard.notes), failure, journal, upto)

    async def _send(
        self, agent: AgentRef, key: str, conversation: str, text: str, otid: str, turn: TurnInput
    ) -> _Heard:
        heard = _Heard()
        drafts = turn.drafts
        growing: dict[str, str] = {}  # message id -> its text so far, in order
        reasoning: dict[str, str] = {}
        calls: dict[str, str] = {}
        try:
            sent = self._client.app.send(agent.id, conversation, text, otid, self._deadline, turn.images)
            async for event in sent:
                if isinstance(event, TextDelta):
                    growing[event.message_id] = event.text
                    if self._tokens and drafts is not None and event.text.strip():
                        await drafts.grow(key, 0, agent.name, "\n\n".join(t.strip() for t in growing.values()))
                elif isinstance(event, Reasoning):
                    reasoning[event.message_id] = event.text
                elif isinstance(event, ToolCalled):
                    calls[event.tool_call_id] = f"{event.name or 'tool'}({' '.join(event.arguments.split())})"
                elif isinstance(event, ToolReturned):
                    call = calls.pop(event.tool_call_id, "tool()")
                    heard.notes.append(Note("tool", f"{call} → {event.status}" if event.status else call))
                elif isinstance(event, ToolDenied):
                    heard.notes.append(Note("tool", f"{event.name or 'tool'}() → refused: {event.reason}"))
                elif isinstance(event, Finished):
                    heard.texts = list(event.replies)
                    heard.error = event.error
        except LettaError as error:
            heard.texts = [t.strip() for t in growing.values() if t.strip()]
            heard.error = error
        notes = [Note("reasoning", " ".join(t.split())) for t in reasoning.values() if t.strip()]
        heard.notes = notes + heard.notes
        return heard

    async def _find(self, conversation: str, otid: str) -> list[str] | None:
        try:
            found = await self._client.app.find_send(conversation, otid)
        except LettaError:
            return None
        return list(found.replies) if found is not None else None

    @staticmethod
    async def _answered(
        agent: AgentRef,
        key: str,
        texts: Sequence[str],
        notes: tuple[Note, ...],
        failure: AgentFailure | None,
        journal: Journal,
        upto: int | None,
    ) -> list[TurnEvent]:
        replies = [AgentReply(agent.name, "\n\n".join(texts), agent.id, key, 0, notes)] if texts else []
        await journal.answered(key, replies, failure, upto)
        return replay(StepRecord("answered", tuple(replies), failure))


def _renew(error: LettaError) -> bool:
    return stuck(error) or error.conversation_gone

