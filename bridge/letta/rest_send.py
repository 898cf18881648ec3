"""One REST send to one agent, heard out, for the bridge runner (`bridge_runner.py`): the agent's own words (a
manager's workers' left out on 0.11), its reply growing in a draft and its tool calls shown as they run, the tool
calls it asks people to approve decided in between (`Approving`); and what a send whose answer was lost did,
never asking the agent again while it may still be answering: re-attached to its background run (Redis), or
read from history once no run it could be is going. What the runner makes of it (journal, transcript, the
step's events) stays in `bridge_runner.py`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bridge.domain import AgentFailure, AgentRef, ApprovalRequest, Drafts, Note, TurnInput
from bridge.letta.approving import Approving
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.exchange import Asked, Draft, Progress, Spoken, exchange
from bridge.letta.recovery import Found, Otids, Sent, decision_reached, settle, still_waiting
from bridge.letta.send_parts import Heard, drafting, own
from bridge.letta.toolprogress import Report, ToolWatch, reporting

log = logging.getLogger(__name__)


class RestSend:
    """Sends to an agent over REST and hears it out; one per bridge runner (its client and streaming choices)."""

    def __init__(self, client: LettaClient, streaming: bool, tokens: bool) -> None:
        self._client = client
        self._streaming = streaming
        self._tokens = tokens

    def exchange(
        self,
        agent: AgentRef,
        message: dict[str, Any],
        conversation: str | None,
        draft: Draft | None,
        background: Progress | None,
        tools: Report | None = None,
        watch: ToolWatch | None = None,
    ) -> AsyncIterator[Spoken]:
        """The agent's words only: on 0.11.x a manager's answer carries its workers' too (their author is not it)."""
        return own(
            agent,
            exchange(
                self._client,
                message,
                agent.name,
                self._streaming,
                agent_id=agent.id,
                conversation=conversation,
                tokens=self._tokens,
                draft=draft,
                background=background,
                tools=tools,
                watch=watch,
            ),
        )

    def approving(
        self, agent: AgentRef, key: str, conversation: str | None, turn: TurnInput, watch: ToolWatch | None = None
    ) -> Approving:
        """The agent's approvals in this send: what follows a decision is shown growing as the reply was, and the
        calls `watch` saw before it (one answered with the decision's) are finished there."""
        def send(message: dict[str, Any]) -> AsyncIterator[Spoken]:
            draft = drafting(turn.drafts, key, agent.name, [])
            tools = reporting(turn.drafts, key, agent.name)
            return self.exchange(agent, message, conversation, draft, None, tools, watch)

        def quiet(message: dict[str, Any]) -> AsyncIterator[Spoken]:
            return self.exchange(agent, message, conversation, None, None)

        async def reached(request: ApprovalRequest, since: datetime) -> bool | None:
            ids = [c.tool_call_id for c in request.calls]
            return await decision_reached(self._client, agent.id, ids, since, conversation)

        async def look(ids: tuple[str, ...], since: datetime) -> list[Asked]:
            return await still_waiting(self._client, agent.id, conversation, ids, since)

        return Approving(turn.approvals, agent, key, conversation, send, quiet, reached, look)

    async def said(
        self,
        agent: AgentRef,
        key: str,
        message: dict[str, Any],
        conversation: str | None,
        turn: TurnInput,
        background: Progress | None = None,
    ) -> Heard:
        """One send's texts and notes, and the error inside its answer if any; raises LettaError when nothing
        came back. A token-streamed reply is shown growing in `drafts`; tool calls the agent asks to run wait for
        people's decisions (`Approving`) and the agent's words after them are part of the reply."""
        texts: list[str] = []
        draft, tools = drafting(turn.drafts, key, agent.name, texts), reporting(turn.drafts, key, agent.name)
        watch = ToolWatch()
        source = self.exchange(agent, message, conversation, draft, background, tools, watch)
        approved = self.approving(agent, key, conversation, turn, watch).run(source)
        return await self.heard(agent, key, approved, turn.drafts, texts)

    @staticmethod
    async def heard(
        agent: AgentRef,
        key: str,
        source: AsyncIterator[Spoken],
        drafts: Drafts | None,
        texts: list[str] | None = None,
    ) -> Heard:
        """What the agent said, after the words `texts` earlier: its words, notes and last step, and the error
        inside its answer; an approval request it asked was answered inside `Approving`."""
        texts = [] if texts is None else texts
        step_id = ""  # the Letta step of the reply's last words, which a feedback vote is about
        notes: list[Note] = []
        failure: AgentFailure | None = None
        blank = False  # a message came back with no words: an empty reply, unlike no message at all
        async for spoken in source:
            if isinstance(spoken, Asked):
                continue  # answered inside `Approving`
            if isinstance(spoken, LettaError):
                failure = AgentFailure(
                    agent.name, spoken.explain(agent.name), spoken.kind, agent.id, spoken.request_id, key, 1,
                    spoken.pending_approval, spoken.target_gone,
                )
            elif spoken.text:
                texts.append(spoken.text)
                notes.extend(spoken.notes)
                step_id = spoken.step_id or step_id
            else:
                blank = True
        return Heard(texts or ([""] if blank else []), failure, tuple(notes), step_id)

    async def finished(self, agent: AgentRef, sent: Sent) -> Found | None:
        """What a send whose stream was cut off left in history once its run is over; None if it cannot be read."""
        try:
            return await settle(self._client, agent.id, sent.otids, sent.since, sent.conversation, agent.name)
        except LettaError as error:
            log.warning("letta history not read after a lost stream agent=%s kind=%s", agent.id, error.kind)
            return None

    async def outcome(
        self,
        agent: AgentRef,
        key: str,
        otid: str,
        since: datetime | None,
        conversation: str | None,
        background: Progress | None,
        drafts: Drafts | None,
        sent: Otids | None = None,
    ) -> Found | list[Spoken] | None:
        """What became of a send whose outcome is unknown, without ever asking the agent again while it may still
        be answering: re-attached to its background run where the server keeps one (Redis; the spoken replies
        come back), else once the agent has no run the send could be, looked up in history (by every otid in
        `sent` it may have carried, else `otid`). None: the send never reached Letta (no run it could be is going,
        and history lacks it), so it may be made again."""
        if background is not None and conversation is not None:
            message = {"otid": otid}
            attached = Progress(otid, attach=True)
            try:
                draft = drafting(drafts, key, agent.name, [])
                tools = reporting(drafts, key, agent.name)
                return [s async for s in self.exchange(agent, message, conversation, draft, attached, tools)]
            except LettaError as error:
                # A 404 names no run for the otid: it never reached Letta, or its mapping expired (Redis keeps it 3
                # hours) or was lost with Redis. Only history tells them apart.
                log.info("re-attaching to otid=%s failed (%s); looking for it in history", otid, error.kind)
        return await settle(self._client, agent.id, sent or otid, since, conversation, agent.name)
