"""`BridgeRunner`: the bridge runs the group itself, sending to each agent in turn over REST and showing each
the group replies it has not seen yet (works on every server, and for agent-list bindings). Each send is
journaled before it is made, and a resumed turn looks for what a send it journaled did before sending again. The
send itself, heard out, and the lookups of one whose answer was lost, are `rest_send.py`'s."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Journal,
    Note,
    PendingApproval,
    StepRecord,
    Target,
    Threads,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.approving import reached
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.exchange import Asked, Progress, Spoken, asked
from bridge.letta.groups import GroupDetails
from bridge.letta.patterns import Frame, Step, message, play, replay, step_otid, with_max_turns
from bridge.letta.recovery import PASSING, Found, Otids, Sent, find_turn, read_again, settle, unread
from bridge.letta.rest_send import RestSend
from bridge.letta.send_parts import each, refused
from bridge.letta.wire import user_message

log = logging.getLogger(__name__)

# Pauses before the server's features are asked again after a failure on the way (about a send's own retries).
PROBE_AGAIN = (0.5, 1.0, 2.0, 4.0)
# A probe that failed through PROBE_AGAIN is not asked again for this long: the turn's next agents and the next
# turns are told at once, not after PROBE_AGAIN's 7.5 s each.
PROBE_FRESH = 5.0
CUT_OFF = frozenset({Kind.TIMEOUT, Kind.DISCONNECTED})  # a stream lost on the way: the run itself may go on
LOST_WITH_CONVERSATION = (
    "{agent}'s conversation for this thread was deleted on Letta while the bridge was restarting, and whatever "
    "{agent} answered went with it. Ask again to get an answer in a new conversation."
)


class BridgeRunner(Step):
    """The group's pattern played agent by agent over REST (`patterns.play`); round robin and agent lists in
    order. On a restart the turn resumes at the first send that has not answered."""

    name = "bridge"

    def __init__(
        self,
        client: LettaClient,
        patience: float = 120.0,
        streaming: bool = True,
        tokens: bool = False,
        max_turns: int | None = None,
    ) -> None:
        self._client = client
        self._patience = patience
        self._max_turns = max_turns  # when the group record has none (LETTA_MAX_TURNS)
        self.details = GroupDetails(client)
        self._send = RestSend(client, streaming, tokens)
        self._probe_failed: dict[str, tuple[float, LettaError]] = {}

    async def _probe(self, read: Callable[[], Awaitable[bool]], agent_id: str) -> bool:
        """What the server has (resumable runs, conversations), asked again through PROBE_AGAIN; a failure that
        outlasted those is kept for PROBE_FRESH and said at once meanwhile (a refusal, a 429, is not kept: it says
        when to ask again)."""
        name = read.__name__
        failed = self._probe_failed.get(name)
        if failed is not None and time.monotonic() - failed[0] < PROBE_FRESH:
            raise failed[1]
        try:
            found = await read_again(read, agent_id, PROBE_AGAIN)
        except LettaError as error:
            if error.kind in PASSING and not error.redirected:  # asked again through PROBE_AGAIN: down, not a blip
                self._probe_failed[name] = (time.monotonic(), error)
            raise
        self._probe_failed.pop(name, None)
        return found

    async def run(
        self, target: Target, turn: TurnInput, transcript: Transcript, journal: Journal
    ) -> AsyncIterator[TurnEvent]:
        target = await self.details.complete(target)
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
        since = record.since if record is not None else None
        return await self._ask(agent, turn, transcript, journal, record is not None, key, frame, since)

    async def _ask(
        self,
        agent: AgentRef,
        turn: TurnInput,
        transcript: Transcript,
        journal: Journal,
        resumed: bool,
        key: str | None = None,
        frame: Frame | None = None,
        since: datetime | None = None,
    ) -> list[TurnEvent]:
        key = key or agent.id
        unseen, upto = await transcript.unseen(agent.id)
        if key != agent.id and not key.startswith(agent.id + "#"):
            upto = None  # a manager's choice of speaker is not a group reply: it stays out of the transcript
        try:
            # Probed before the thread's conversation is made: one made and then refused its first send here would
            # be kept as holding the thread, which it never got.
            resumes = await self._probe(self._client.has_resume, agent.id)
        except LettaError as error:
            if not resumed:  # nothing sent
                return await refused(agent, key, error, journal)
            # Sent before the restart: looked up by its otids in history, as on a server without Redis.
            log.warning("letta resume probe failed, looking in history agent=%s kind=%s", agent.id, error.kind)
            resumes = False
        try:
            conversation = await turn.threads.conversation(agent.id) if turn.threads is not None else None
            if conversation is None and await self._probe(self._client.has_conversations, agent.id):
                # Agent-direct mode: the agent's own thread, which a server with Redis locks (a 409 names the run).
                conversation = DEFAULT_CONVERSATION
        except LettaError as error:  # the thread's conversation could not be made, nor the server's read
            if resumed:  # sent before the restart: never made again, said as unknown
                return await self._unread(agent, key, error, journal)
            return await refused(agent, key, error, journal)
        resumable = conversation is not None and resumes
        # A Redis server maps an otid to its background run server-wide, and attaches a send with a known otid to
        # that run: each agent's send of the turn gets an otid of its own there.
        otid = journal.otid if key == agent.id and not resumable else step_otid(journal.otid, key)
        background = Progress(otid) if resumable else None
        # A resumed send was made by a process that may have seen the server otherwise (Letta restarted with or
        # without Redis since): it is looked up by either otid it can have carried.
        other = journal.otid if otid != journal.otid else step_otid(journal.otid, key)
        sent: Otids = (otid, other) if key == agent.id else otid
        pending = await turn.approvals.resumed(key) if resumed and turn.approvals is not None else None
        if pending is not None:  # it asked for an approval before a restart: the send is past, the decision is not
            return await self._decided(agent, key, sent, since, pending, turn, journal, upto)
        if resumed:
            try:
                found = await self._send.outcome(agent, key, otid, since, conversation, background, turn.drafts, sent)
            except LettaError as error:
                if not error.conversation_gone:
                    return await self._unread(agent, key, error, journal)
                return await self._lost(agent, key, error, journal)
            lookup = Sent(sent, since, conversation)
            if isinstance(found, list):
                return await self._reattached(agent, key, found, turn, journal, upto, lookup)
            if found is not None:
                return await self._recovered(agent, key, found, turn, journal, upto, lookup)
        await journal.sending(key)
        sent_at = datetime.now(UTC)
        earlier = await turn.threads.earlier(agent.id) if turn.threads is not None else ""
        said = user_message(message(earlier, unseen, turn.text, frame), otid, turn.sender, turn.images)
        try:
            try:
                heard = await self._send.said(agent, key, said, conversation, turn, background)
            except LettaError as error:
                if conversation in (None, DEFAULT_CONVERSATION) or turn.threads is None or not error.conversation_gone:
                    raise
                if resumed:
                    # Journaled before a restart; history (empty once it is gone) cannot say it never ran.
                    return await self._lost(agent, key, error, journal)
                # The thread's conversation was deleted on Letta, so nothing was sent: the thread gets a new one,
                # which starts with the thread so far.
                assert conversation is not None
                conversation = await turn.threads.renew(agent.id, conversation)
                earlier = await turn.threads.earlier(agent.id)
                said = user_message(message(earlier, unseen, turn.text, frame), otid, turn.sender, turn.images)
                heard = await self._send.said(agent, key, said, conversation, turn, background)
        except LettaError as error:
            found = None
            if error.outcome_unknown:
                try:
                    found = await self._send.outcome(agent, key, otid, sent_at, conversation, background, turn.drafts)
                except LettaError as unreadable:
                    return await self._unread(agent, key, unreadable, journal)
                lookup = Sent(otid, sent_at, conversation)
                if isinstance(found, list):
                    return await self._reattached(agent, key, found, turn, journal, upto, lookup)
                if found is not None and (found.texts or found.asked):
                    return await self._recovered(agent, key, found, turn, journal, upto, lookup)
            if found is None and turn.threads is not None and conversation is not None and turn.threads.fresh(agent.id):
                # The first send to a conversation made for the agent: it carried the thread (the thread so far, or
                # the turn's own words and thread context). A later send of the turn carries none: the conversation
                # holds the thread already.
                await self._unless_stored(agent, otid, conversation, turn.threads, error)
            return await refused(agent, key, error, journal)
        if heard.failure is not None and heard.failure.kind in CUT_OFF:
            # The stream was lost, not the run: Letta finishes a send whose client went away and stores its reply.
            lookup = Sent(otid, sent_at, conversation)
            found = await self._send.finished(agent, lookup)
            if found is not None and (found.texts or found.asked):
                return await self._recovered(agent, key, found, turn, journal, upto, lookup, heard.notes)
        return await self._answered(agent, key, heard.texts, heard.failure, journal, upto, heard.notes, heard.step_id)

    async def _unless_stored(
        self, agent: AgentRef, otid: str, conversation: str, threads: Threads, error: LettaError
    ) -> None:
        """A conversation's first send that failed: unless Letta stored it (its agent loop may have, before
        failing), the conversation is left and the thread so far owed again (`Threads.unsent`)."""
        if error.loop_ran:
            try:
                if await find_turn(self._client, agent.id, otid, conversation, agent.name) is not None:
                    return
            except LettaError:
                return  # cannot tell: taken to have arrived, as a send whose outcome is unknown is
        await threads.unsent(agent.id, conversation)

    async def _recovered(
        self,
        agent: AgentRef,
        key: str,
        found: Found,
        turn: TurnInput,
        journal: Journal,
        upto: int | None,
        sent: Sent,
        notes: tuple[Note, ...] = (),
    ) -> list[TurnEvent]:
        """A send's outcome read from history. An approval request there that Letta still waits on is asked about
        in the thread as a live send's would be, and the agent read on: left alone, it would refuse every later
        message (409 PENDING_APPROVAL) with no card to decide it."""
        if not found.asked:
            return await self._answered(agent, key, list(found.texts), None, journal, upto, notes)
        questions = [q for q in (asked(r) for r in found.asked) if q is not None]
        source = self._send.approving(agent, key, sent.conversation, turn).run(each(questions))
        return await self._read_on(agent, key, source, turn, journal, upto, sent, list(found.texts), notes)

    async def _reattached(
        self,
        agent: AgentRef,
        key: str,
        spoken: list[Spoken],
        turn: TurnInput,
        journal: Journal,
        upto: int | None,
        sent: Sent,
    ) -> list[TurnEvent]:
        """A re-attached run's replies. A run that stopped to ask for approval brings its request again
        (redis-approval-stream-resume-by-otid): it is asked about in the thread as a live send's would be, and the
        agent read on; left alone, the agent would refuse every later message (409 PENDING_APPROVAL)."""
        if not any(isinstance(s, Asked) for s in spoken):  # read on as a live send is: a cut is read from history
            return await self._read_on(agent, key, each(spoken), turn, journal, upto, sent)
        source = self._send.approving(agent, key, sent.conversation, turn).run(each(spoken))
        return await self._read_on(agent, key, source, turn, journal, upto, sent)

    async def _read_on(
        self,
        agent: AgentRef,
        key: str,
        source: AsyncIterator[Spoken],
        turn: TurnInput,
        journal: Journal,
        upto: int | None,
        sent: Sent,
        said: list[str] | None = None,
        notes: tuple[Note, ...] = (),
    ) -> list[TurnEvent]:
        """The step answered from what the agent says through its approvals, after the words `said` earlier. A
        stream cut on the way is read from history once the run is over, as the live send's is (`_ask`)."""
        try:
            heard = await self._send.heard(agent, key, source, turn.drafts, said)
        except LettaError as error:
            return await refused(agent, key, error, journal)
        if heard.failure is not None and heard.failure.kind in CUT_OFF:
            found = await self._send.finished(agent, sent)
            if found is not None and (found.texts or found.asked):
                return await self._recovered(agent, key, found, turn, journal, upto, sent, (*notes, *heard.notes))
        notes = (*notes, *heard.notes)
        return await self._answered(agent, key, heard.texts, heard.failure, journal, upto, notes, heard.step_id)

    async def _decided(
        self,
        agent: AgentRef,
        key: str,
        otid: Otids,
        since: datetime | None,
        pending: PendingApproval,
        turn: TurnInput,
        journal: Journal,
        upto: int | None,
    ) -> list[TurnEvent]:
        """A step that asked for approval before a restart: the decision is awaited (its cards are already in the
        thread) and sent, unless it may have been sent already: then history says whether it reached Letta. What
        the agent said before asking (0.16.8 sends the words of the same model answer first,
        approval-said-first-stream.json) is read back from history, so that the reply still begins with it."""
        request, conversation = pending.request, pending.request.conversation
        if pending.sent:
            try:
                found = await settle(self._client, agent.id, otid, since, conversation, agent.name)
            except LettaError as error:
                return await self._unread(agent, key, error, journal)
            if reached(request, found):
                assert found is not None and turn.approvals is not None
                await turn.approvals.settled(request)
                return await self._answered(agent, key, list(found.texts), None, journal, upto)
        else:
            try:
                found = await find_turn(self._client, agent.id, otid, conversation, agent.name)
            except LettaError as error:  # only its first words are missed: the decision still matters more
                log.warning("letta history not read agent=%s kind=%s", agent.id, error.kind)
                found = None
        approving = self._send.approving(agent, key, conversation, turn)
        answered = approving.run(approving.answer(request, await approving.decide(request)))
        said = list(found.texts) if found else []
        return await self._read_on(agent, key, answered, turn, journal, upto, Sent(otid, since, conversation), said)

    @staticmethod
    async def _lost(agent: AgentRef, key: str, error: LettaError, journal: Journal) -> list[TurnEvent]:
        """A resumed send whose conversation was deleted meanwhile: what it did went with it; never made again."""
        explained = LOST_WITH_CONVERSATION.format(agent=agent.name)
        failure = AgentFailure(agent.name, explained, error.kind, agent.id, error.request_id, key)
        await journal.answered(key, [], failure)
        return [failure]

    @staticmethod
    async def _unread(agent: AgentRef, key: str, error: LettaError, journal: Journal) -> list[TurnEvent]:
        """A send whose outcome is unknown, its answer unreadable on Letta after a failure on the way: never made
        again, said as unknown. A refusal (a key Letta no longer takes, an agent deleted) is said as what it is."""
        if error.kind not in PASSING:
            return await refused(agent, key, error, journal)
        log.warning("letta history not read, outcome unknown agent=%s kind=%s", agent.id, error.kind)
        failure = unread(agent, key, error)
        await journal.answered(key, [], failure)
        return [failure]

    @staticmethod
    async def _answered(
        agent: AgentRef,
        key: str,
        texts: list[str],
        failure: AgentFailure | None,
        journal: Journal,
        upto: int | None,
        notes: tuple[Note, ...] = (),
        step_id: str = "",
    ) -> list[TurnEvent]:
        replies = [AgentReply(agent.name, "\n\n".join(texts), agent.id, key, 0, notes, step_id)] if texts else []
        await journal.answered(key, replies, failure, upto)
        return replay(StepRecord("answered", tuple(replies), failure))

