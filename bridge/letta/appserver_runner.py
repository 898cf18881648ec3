"""`AppServerRunner`: a binding's agents asked in turn over the Letta App Server (one WebSocket, no REST).

The App Server has no groups, so a binding is a list of agents with the pattern the bridge plays for it
(`patterns.play`, the same code and message formats as `BridgeRunner` on REST servers): in order (round robin),
supervisor, dynamic or broadcast. Each agent is shown the replies of the thread it has not seen yet
(`patterns.compose`, the documented format) ahead of the person's message. Each agent answers in the Slack
thread's own conversation (one per thread and agent, made and stored before the first send, never `default`).

No send is ever made twice: the step is journaled `sending` before it, and after a restart a step still
`sending` is looked up in its conversation's history by its otid (`find_send`): not there, it never reached
the server and is sent; there, its stored reply is taken and the thread leaves that conversation (a turn cut by
a closed socket leaves it stuck on 0.34.12): its next send to the agent makes a new one, which starts with the
thread so far. A conversation the server holds stuck ("already has an active run", until it restarts) is
replaced by a new one for the thread, and the message sent once more.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    ApprovalRequest,
    Decision,
    Journal,
    Note,
    StepRecord,
    Target,
    Threads,
    ToolCall,
    ToolProgress,
    ToolState,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.approving import NOBODY
from bridge.letta.appserver import (
    Finished,
    Reasoning,
    TextDelta,
    ToolAsked,
    ToolCalled,
    ToolDenied,
    ToolReturned,
    ToolStarted,
)
from bridge.letta.appserver import conversation_stuck as stuck
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.errors import Kind, LettaError
from bridge.letta.patterns import Frame, Step, message, play, replay, step_otid, with_max_turns
from bridge.letta.send_parts import refused
from bridge.letta.toolprogress import one_line

log = logging.getLogger(__name__)
T = TypeVar("T")

CUT_OFF = "{agent}'s answer was cut off when the bridge stopped; nothing more of it was kept."
STOPPED_SHORT = (
    "The bridge stopped while {agent} was answering, and the App Server ends a turn whose connection closed: it "
    "kept only what is above, which may be part of the answer. Ask again for the rest."
)
CUT_SHOWN = (
    "The bridge stopped while {agent} was answering, and the App Server ends a turn whose connection closed: "
    "{agent}'s answer above is cut off where the thread last saw it. Ask again for the rest."
)
CUT_MID = (
    "The connection to the Letta App Server dropped while {agent} was answering: {agent}'s answer above is cut off "
    "where it stopped coming. Ask again for the rest."
)
CUT_SHORT = (
    "The connection to the Letta App Server dropped while {agent} was answering: the server kept only what is "
    "above, which may be part of the answer. Ask again for the rest."
)
ENDED = (
    "The bridge restarted while this waited, and the App Server ends a turn whose connection closed, so this "
    "decision can no longer be used. Ask again."
)


@dataclass
class _Heard:
    """What one send got: the agent's messages, its notes, and the error its turn ended with."""

    texts: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    error: LettaError | None = None
    raised: bool = False  # the server never took the message, or its answer to taking it was lost


class AppServerRunner(Step):
    name = "app-server"

    def __init__(
        self,
        client: AppServerLetta,
        tokens: bool = False,
        deadline: float | None = None,
        max_turns: int | None = None,
    ) -> None:
        self._client = client
        self._tokens = tokens  # token streaming: replies grow in their drafts
        self._deadline = deadline
        self._max_turns = max_turns  # LETTA_MAX_TURNS, for a round robin or dynamic binding without its own

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        async for event in play(self, with_max_turns(target, self._max_turns), turn, transcript, journal):
            yield event

    async def ask(
        self,
        agent: AgentRef,
        turn: TurnInput,
        transcript: Transcript,
        journal: Journal,
        key: str,
        frame: Frame | None,
        record: StepRecord | None,
    ) -> list[TurnEvent]:
        unseen, upto = await transcript.unseen(agent.id)
        if key != agent.id and not key.startswith(agent.id + "#"):
            upto = None  # a manager's choice of speaker is not a group reply: it stays out of the transcript
        otid = journal.otid if key == agent.id else step_otid(journal.otid, key)
        try:
            if turn.threads is None:
                raise LettaError(Kind.INVALID, "the App Server needs a conversation per Slack thread")
            conversation = await turn.threads.conversation(agent.id)
            if conversation is None:
                raise LettaError(Kind.INVALID, "no conversation for the thread")
            if record is not None:  # sent before a restart, or not: its conversation's history says
                pending = await turn.approvals.resumed(key) if turn.approvals is not None else None
                if pending is not None and turn.approvals is not None:
                    await turn.approvals.settled(pending.request, ENDED)  # the closed socket ended that turn
                found = await self._client.app.find_send(conversation, otid)
                if found is not None:
                    log.info("app server: send found after a restart otid=%s agent=%s", otid, agent.id)
                    # Its turn was running when the bridge's socket closed: 0.34.12 then holds the conversation
                    # stuck until the server restarts (and queues behind the dying turn before that), so the
                    # thread's next send to the agent makes a new one, which carries the thread so far.
                    await turn.threads.forget(agent.id, conversation)
                    # The socket that sent it closed with the process: the server ended the turn, keeping what
                    # was written so far (README §9), a stub unless it had finished; there is no telling which.
                    said = (STOPPED_SHORT if found.replies else CUT_OFF).format(agent=agent.name)
                    kept = list(found.replies)
                    if kept and turn.drafts is not None and await turn.drafts.shown_before(key, 0):
                        # 0.34.12 may keep only the chunk in flight ("w70" of a reply cut at its 70th word), while
                        # the draft the thread saw holds the words before it: the draft stays, marked cut off.
                        said, kept = CUT_SHOWN.format(agent=agent.name), []
                    cut = AgentFailure(agent.name, said, Kind.RUN_FAILED, agent.id, "", key, 1)
                    return await self._answered(agent, key, kept, (), cut, journal, upto)
            if self._client.app.left_busy(conversation):
                # Its last input was taken back (a deadline, a Stop) while the model call went on: the server
                # would queue this one behind that call, so the thread gets a new conversation (with its history).
                await turn.threads.forget(agent.id, conversation)
                conversation = await turn.threads.conversation(agent.id)
                if conversation is None:
                    raise LettaError(Kind.INVALID, "no conversation for the thread")
        except LettaError as error:  # nothing was sent
            return await refused(agent, key, error, journal)
        await journal.sending(key)
        async with self._client.locks.hold([conversation]):  # a conversation's own lock, as on REST servers
            said = message(await turn.threads.earlier(agent.id), unseen, turn.text, frame)
            heard = await self._send(agent, key, conversation, said, otid, turn)
            if heard.error is not None and not heard.texts and _renew(heard.error):
                # Stuck until the server restarts, or gone: nothing of this message was stored or run there.
                try:
                    conversation = await turn.threads.renew(agent.id, conversation)
                except LettaError as error:
                    return await refused(agent, key, error, journal)
                # The new conversation starts with the thread so far.
                said = message(await turn.threads.earlier(agent.id), unseen, turn.text, frame)
                heard = await self._send(agent, key, conversation, said, otid, turn)
        failure = None
        if heard.error is not None:
            failed = heard.error
            explained = failed.explain(agent.name)
            if failed.kind == Kind.DISCONNECTED and heard.texts:  # part of it came: said as cut, not as lost
                explained = CUT_MID.format(agent=agent.name)
            failure = AgentFailure(
                agent.name, explained, failed.kind, agent.id, failed.request_id, key, 1, target_gone=failed.target_gone
            )
        # The answer was lost on the way: history may have it. Not after the bridge's own deadline, which took the
        # message back (0.34 keeps the reply's first chunk of an aborted turn: a stub, not the answer).
        lost = heard.error is not None and heard.error.outcome_unknown and not heard.error.withdrawn
        if heard.error is not None and not heard.texts and lost:
            stored = await self._find(conversation, otid)
            if stored:
                # The server ends a turn whose socket dropped, keeping what was written so far: maybe a stub.
                short = AgentFailure(agent.name, CUT_SHORT.format(agent=agent.name), heard.error.kind, agent.id,
                                     heard.error.request_id, key, 1)
                return await self._answered(agent, key, stored, (), short, journal, upto)
        if heard.error is not None and heard.raised and not heard.texts and turn.threads.fresh(agent.id):
            await self._unless_stored(agent.id, conversation, otid, heard.error, turn.threads)
        return await self._answered(agent, key, heard.texts, tuple(heard.notes), failure, journal, upto)

    async def _unless_stored(
        self, agent_id: str, conversation: str, otid: str, error: LettaError, threads: Threads
    ) -> None:
        """A first send to a conversation made for the agent that the server may never have taken: unless the
        conversation's history holds it, the conversation is left (`Threads.unsent`), or the thread (its
        question, its context) would be lost to the agent for good."""
        if error.outcome_unknown:
            try:
                if await self._client.app.find_send(conversation, otid) is not None:
                    return
            except LettaError:
                return  # cannot tell: taken to have arrived, as on REST
        await threads.unsent(agent_id, conversation)

    async def _send(
        self, agent: AgentRef, key: str, conversation: str, text: str, otid: str, turn: TurnInput
    ) -> _Heard:
        heard, drafts = _Heard(), turn.drafts
        growing: dict[str, str] = {}  # message id -> its text so far, in order
        reasoning: dict[str, str] = {}
        calls: dict[str, str] = {}
        named: dict[str, ToolCalled] = {}
        try:
            sent = self._client.app.send(
                agent.id, conversation, text, otid, self._deadline, turn.tools, turn.images
            )
            async for event in sent:
                progress = tool_progress(event, named)
                if progress is not None and self._tokens and drafts is not None:
                    await drafts.tool(key, 0, agent.name, progress)
                if isinstance(event, ToolAsked):
                    await self._decide(agent, key, conversation, event, turn)
                elif isinstance(event, TextDelta):
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
            heard.raised = True
        notes = [Note("reasoning", " ".join(t.split())) for t in reasoning.values() if t.strip()]
        heard.notes = notes + heard.notes
        return heard

    async def _decide(self, agent: AgentRef, key: str, conversation: str, asked: ToolAsked, turn: TurnInput) -> None:
        """A tool the server asks about, decided by people (the turn waits) and answered; a stale answer said on
        its card."""
        call = ToolCall(asked.tool_call_id, asked.name, asked.arguments)
        request = ApprovalRequest(agent.name, agent.id, key, (call,), asked.request_id, conversation)
        approvals = turn.approvals
        if approvals is None:
            decision = Decision(call.tool_call_id, False, NOBODY)
        else:
            decided = await approvals.decide_unless(request, asked.ended)
            if decided is None:  # the server ended the turn with its socket: nobody's decision can reach it
                log.info("app server turn ended while its approval waited request_id=%s", asked.request_id)
                await approvals.settled(request, ENDED_WHILE_ASKED)
                return
            decision = decided[0]
            await approvals.sending(request)
        refused = await self._client.app.answer(
            agent.id, conversation, asked.request_id, decision.approve, decision.reason
        )
        if refused is not None:
            log.info("app server refused a decision request_id=%s: %s", asked.request_id, refused)
        if approvals is not None:
            stale = LettaError(Kind.INVALID, refused) if refused is not None else None
            await approvals.settled(request, stale.explain(agent.name) if stale is not None else None)

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


# Said on the card after "Letta no longer waited for this decision <when>: ".
ENDED_WHILE_ASKED = "The connection to the Letta App Server closed, which ended the agent's turn."


def tool_progress(event: object, named: dict[str, ToolCalled]) -> ToolProgress | None:
    """A tool call's move, from the App Server's frames (README §7): asked (pending: the server classifies it),
    started (running), returned or refused by the bridge (done or failed). `named` keeps each call's name."""
    if isinstance(event, ToolCalled):
        named[event.tool_call_id] = event
        return ToolProgress(event.tool_call_id, event.name or "tool", one_line(event.arguments), "pending")
    if isinstance(event, ToolDenied):
        args = one_line(named[event.tool_call_id].arguments) if event.tool_call_id in named else ""
        return ToolProgress(event.tool_call_id, event.name or "tool", args, "failed", one_line(event.reason))
    call_id = event.tool_call_id if isinstance(event, ToolStarted | ToolReturned) else None
    call = named.get(call_id or "")
    if call is None:
        return None
    if isinstance(event, ToolStarted):
        state: ToolState = "running"
    else:
        state = "failed" if isinstance(event, ToolReturned) and event.status == "error" else "done"
    output = one_line(event.text) if isinstance(event, ToolReturned) and state == "failed" else ""
    return ToolProgress(call.tool_call_id, call.name or "tool", one_line(call.arguments), state, output)


def _renew(error: LettaError) -> bool:
    return stuck(error) or error.conversation_gone

