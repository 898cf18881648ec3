"""Tool approvals on the REST servers (0.16.8, Cloud): a send that stops with `requires_approval` goes on once
people have decided.

The agent's `approval_request_message` (reference/letta/README.md section 17) becomes an `ApprovalRequest` for
the turn's `Approvals` (cards in the Slack thread, decided once, or denied at the timeout). The decisions go back
as one `approval` message to the same agent or conversation, streamed like any send, and what the agent says
then is read on as part of the same reply; it may ask again. The server rejects a decision it no longer waits
for (400 `Invalid tool call IDs`): that is said plainly, and the card says so too. Sending the same decision
twice is NOT rejected once the tool ran (the server runs another turn), so a decision that may have been sent
before a restart is looked up in history first (`reached`), never sent blind. A request stays pending on the server
until it is decided, whatever is cancelled (a cancel finds no run; every later message is refused 409
PENDING_APPROVAL): a turn a person stops while it waits denies its calls (`withdraw`), so the agent is not left
blocked; what the agent says to that is not shown, but a request in it (the model calling its next tool) is
denied too, up to ROUNDS of them (`_denied`); when the denial's stream fails after it reached Letta, that request
is looked for in history instead (`Look`). A turn stopped while its process was gone is denied the same way by the
process that ends the stop (`deny`, stop_end.py). Either marks each request as sent first (`Denials`), so that it
is denied once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bridge.domain import AgentRef, ApprovalRequest, Approvals, Decision, Denials
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.exchange import Asked, Spoken, exchange
from bridge.letta.recovery import Found, still_waiting
from bridge.letta.wire import approval_message

log = logging.getLogger(__name__)

NOBODY = "Nobody could be asked in Slack to approve this tool call, so it was not run."
STOPPED = "the turn was stopped"
ROUNDS = 5  # requests asked in answer to a stop's denials that are denied too, before the thread is told instead

Send = Callable[[dict[str, Any]], AsyncIterator[Spoken]]
# Whether a request's decision sent at that time reached Letta (recovery.decision_reached); None: cannot tell.
Reached = Callable[[ApprovalRequest, datetime], Awaitable[bool | None]]
# The requests Letta still waits on that the agent made in answer to a decision on these calls sent at that time
# (recovery.still_waiting). Raises LettaError.
Look = Callable[[tuple[str, ...], datetime], Awaitable[list[Asked]]]


class Approving:
    """One agent send's questions answered in turn; every other thing it says passes through unchanged."""

    def __init__(
        self,
        approvals: Approvals | None,
        agent: AgentRef,
        key: str,
        conversation: str | None,
        send: Send,
        quiet: Send | None = None,
        reached: Reached | None = None,
        look: Look | None = None,
    ) -> None:
        self._approvals = approvals
        self._agent = agent
        self._key = key
        self._conversation = conversation
        self._send = send
        self._quiet = quiet or send  # a send that shows nothing in Slack (no draft, no tool tasks)
        self._reached = reached
        self._look = look

    def request(self, questions: list[Asked]) -> ApprovalRequest:
        calls = tuple(call for q in questions for call in q.calls)
        return ApprovalRequest(
            self._agent.name, self._agent.id, self._key, calls, questions[-1].request_id, self._conversation
        )

    async def run(self, source: AsyncIterator[Spoken]) -> AsyncIterator[Spoken]:
        while True:
            questions: list[Asked] = []
            async for spoken in source:
                if isinstance(spoken, Asked):
                    questions.append(spoken)
                else:
                    yield spoken
            if not questions:
                return
            request = self.request(questions)
            log.info(
                "letta agent asks for approval agent=%s step=%s tools=%s",
                self._agent.id,
                self._key,
                ",".join(c.name for c in request.calls),
            )
            source = self.answer(request, await self.decide(request))

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        if self._approvals is None:
            return tuple(Decision(c.tool_call_id, False, NOBODY) for c in request.calls)
        try:
            return await self._approvals.decide(request)
        except asyncio.CancelledError:
            if self._approvals.stopped:
                await asyncio.shield(self.withdraw(request))
            raise

    async def withdraw(self, request: ApprovalRequest) -> None:
        """The turn was stopped while its request waited: every call denied, so that the agent takes messages again;
        what the agent answers is not shown, but a request in it is denied too (`_denied`)."""
        if self._approvals is None:
            return
        await self._approvals.sending(request)  # a process ending this stop later never denies it again
        await _denied(self._quiet, request, self._approvals, look=self._look)

    async def answer(self, request: ApprovalRequest, decisions: tuple[Decision, ...]) -> AsyncIterator[Spoken]:
        """Send the decisions (recorded as sent first) and read on; a stale one ends in its plain-words error. A send
        that failed on the way is made once more if history shows Letta never got it (`Reached`), never blind."""
        if self._approvals is not None:
            await self._approvals.sending(request)
        for again in (True, False):
            since = datetime.now(UTC)
            try:
                async for spoken in self._send(approval_message(decisions)):
                    yield spoken
            except LettaError as error:
                if not error.stale_decision:
                    if again and await self._undelivered(request, since, error):
                        continue
                    raise
                log.info("letta refused a stale decision agent=%s step=%s", self._agent.id, self._key)
                if self._approvals is not None:
                    await self._approvals.settled(request, error.explain(self._agent.name))
                yield error
                return
            break
        if self._approvals is not None:
            await self._approvals.settled(request)

    async def _undelivered(self, request: ApprovalRequest, since: datetime, error: LettaError) -> bool:
        """Whether the decision's failed send never reached Letta, so that it may be made again. One that did is
        settled (its answer is read as any failed send's); one nobody can tell stays recorded as maybe sent."""
        if self._reached is None:
            return False
        try:
            reached = await self._reached(request, since)
        except LettaError as unreadable:
            log.warning("letta history not read after a decision failed agent=%s kind=%s", self._agent.id,
                        unreadable.kind)
            return False
        if reached and self._approvals is not None:
            await self._approvals.settled(request)
        if reached is False:
            log.warning("letta decision did not arrive (%s); sending it again agent=%s step=%s", error.kind,
                        self._agent.id, self._key)
        return reached is False


async def deny(
    client: LettaClient, request: ApprovalRequest, denials: Denials, reason: str = STOPPED
) -> LettaError | None:
    """Deny an ended turn's calls still pending on Letta (its process is gone, or its workspace removed the app), the
    reason given to the agent; a request in its answer is denied too. The error when Letta refused it or did not
    answer, so that the caller can tell a server that is down from one that said no."""

    def quiet(message: dict[str, Any]) -> AsyncIterator[Spoken]:
        return exchange(client, message, request.agent_name, True, agent_id=request.agent_id,
                        conversation=request.conversation)

    async def look(ids: tuple[str, ...], since: datetime) -> list[Asked]:
        return await still_waiting(client, request.agent_id, request.conversation, ids, since)

    return await _denied(quiet, request, denials, reason, look)


async def _denied(
    send: Send, request: ApprovalRequest, denials: Denials, reason: str = STOPPED, look: Look | None = None
) -> LettaError | None:
    """Deny the request's calls; the agent may answer a denial by asking for its next tool (a model calling tools
    in turn), which 0.16.8 keeps pending too: each such request is journaled (`denials.denying`, before its denial
    goes, as the first one's is) and denied, up to ROUNDS of them; past that, the thread is told what waits. A
    denial whose stream failed may still have reached Letta: its answer's request is then read from history."""
    for rounds in range(ROUNDS + 1):
        ids = tuple(c.tool_call_id for c in request.calls)
        since = datetime.now(UTC)
        try:
            denial = approval_message(tuple(Decision(i, False, reason) for i in ids))
            questions = [spoken async for spoken in send(denial) if isinstance(spoken, Asked)]
        except LettaError as error:
            log.warning("letta approval not withdrawn agent=%s error=%s", request.agent_id, error.kind)
            questions = await _looked(look, ids, since, request.agent_id)
            if not questions:
                return error
        log.info("letta approval withdrawn (%s) agent=%s calls=%s", reason, request.agent_id, ",".join(ids))
        if not questions:
            return None
        calls = tuple(call for q in questions for call in q.calls)
        request = replace(request, calls=calls, request_id=questions[-1].request_id)
        if rounds == ROUNDS:
            log.warning(
                "letta agent asked again after %d denials; left pending agent=%s conversation=%s calls=%s",
                rounds + 1, request.agent_id, request.conversation, ",".join(c.tool_call_id for c in calls),
            )
            await denials.left_pending(request, rounds + 1)
            return None
        log.info("letta agent asked again after a denial agent=%s calls=%s", request.agent_id,
                 ",".join(c.tool_call_id for c in calls))
        if not await denials.denying(request):
            return None  # marked as sent before: its denial may have gone already
    return None


async def _looked(look: Look | None, ids: tuple[str, ...], since: datetime, agent_id: str) -> list[Asked]:
    """The requests the agent made in answer to a denial whose stream failed: found in history only if the denial
    reached Letta (a request holding its own calls means it did not, and is not denied blind again)."""
    if look is None:
        return []
    try:
        found = await look(ids, since)
    except LettaError as unreadable:
        log.warning("letta history not read after a denial failed agent=%s kind=%s", agent_id, unreadable.kind)
        return []
    return [q for q in found if not any(c.tool_call_id in ids for c in q.calls)]


def reached(request: ApprovalRequest, found: Found | None) -> bool:
    """Whether a decision sent before a restart reached Letta: a tool return for one of its calls is in history."""
    ids = {c.tool_call_id for c in request.calls}
    return found is not None and any(i in ids for i in found.tool_returns)
