"""The end of a stop whose turn no process was running any more: its process was killed or crashed mid-turn.

A running turn cannot be told it is stopped once its process is gone, and nobody else knows what signs it had put
up. So a stop leaves a running turn `stopping`, which still counts as unfinished: the process that takes the
binding over (the sweep, after the dead process's lease ran out; on SQLite, the next start) is handed the turn
and ends its stop here instead of running it. The agents are never asked again; the runs the dead process had in
flight are cancelled (under their agents' locks: stopping.TurnStops.cancel_letta); a tool call still pending on
Letta is denied ("the turn was stopped"), since 0.16.8 keeps it pending whatever is cancelled and refuses the
agent's later messages, unless a decision on it may have been sent (the store's `sent_at`, marked before any
denial: once only), and what the agent answers is dropped but for a request in it, denied in turn
(`EndedDenials`); a request the agent made after a decision or denial that went before, whose answer its dead process
never read, is found in history and denied too (`_deny_waiting`); the turn's approval cards say it was stopped, the
thread is told once (the post is looked for in the thread first, in case an earlier end of this stop died after it), the
session is set `active` (or, where sessions are unavailable, the 👀 and the status line are taken back and ⏹ put
up), and then the turn is marked stopped. The same denial serves the turns a workspace's removal ended
(`withdraw_ended`, bounded: an uninstall never waits on a Letta that does not answer; once a denial has gone through,
with a new request or a plain reply, the bound is lifted, so that it never cuts a recorded denial before it goes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from bridge.approval_desk import ApprovalDesk
from bridge.approvals import tell_left_pending, tell_may_be_pending
from bridge.config import Settings
from bridge.domain import ApprovalRequest, Target, ToolCall, Turn
from bridge.letta.approving import STOPPED as STOPPED_CALL
from bridge.letta.approving import deny
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.recovery import Undecided, still_waiting
from bridge.outbox import TurnOutbox
from bridge.presence import take_back
from bridge.slack.failures import SlackPostError
from bridge.slack.post import Part, SlackPoster
from bridge.slack.render import escape
from bridge.slack.sessions import Sessions
from bridge.stopping import CANCEL_DEADLINE, RunningTurn, TurnStops
from bridge.store.approvals import Approval, ApprovalStore, Asked
from bridge.store.base import Store
from bridge.turn_words import STOPPED

log = logging.getLogger(__name__)

STOP_NOTICE = "notice:stopped"  # the outbox source of a turn's "Stopped by" notice


async def say_stopped(poster: SlackPoster, outbox: TurnOutbox, turn: Turn, by: str, check_first: bool) -> None:
    """Tell the thread who stopped the turn, once. The notice is an outbox row like any other, recorded as it
    lands: a second end of this stop finds it said, and the look for a notice that may have landed unrecorded
    (`check_first`, or a post whose outcome is unknown) skips the recorded ones, so it never takes an earlier
    turn's notice in the same words for this one's. Raises SlackPostError."""
    await outbox.add(STOP_NOTICE, None, STOPPED.format(user=escape(by)))
    for item in await outbox.pending():
        if item.source == STOP_NOTICE:
            notice = Part(item.text, None)  # mrkdwn: the mention is meant
            ts = await poster.post(
                turn.channel_id,
                turn.thread_ts,
                notice,
                check_first=check_first,
                after=turn.message_ts,
                taken=outbox.thread_posts,
            )
            await outbox.posted(item, 0, ts, last=True)


class StopEnd:
    """Ends the stops of turns handed to this process's worker as `stopping` (Job.stopped_by)."""

    def __init__(
        self,
        store: Store,
        stops: TurnStops,
        poster: SlackPoster,
        sessions: Sessions,
        desk: ApprovalDesk,
        settings: Settings,
    ) -> None:
        self._store, self._stops, self._poster, self._sessions, self._desk = store, stops, poster, sessions, desk
        self._client: LettaClient = stops.client
        self._working, self._stopped = settings.slack_working_reaction, settings.slack_stopped_reaction

    async def finish(self, turn: Turn, turn_id: int, by: str, target: Target | None, otid: str = "") -> None:
        running = RunningTurn(turn_id, turn.team_id, turn.channel_id, turn.thread_ts, target=target, otid=otid)
        try:
            async with asyncio.timeout(CANCEL_DEADLINE):
                await self._stops.cancel_letta(running)
        except TimeoutError:
            log.warning("letta cancel took too long turn_id=%s", turn_id)
        await withdraw(self._client, self._desk.store, turn_id, STOPPED_CALL, self._poster)
        for row in await self._desk.store.open_in(turn.team_id, turn.channel_id, turn.thread_ts):
            if row.asked.turn_id == turn_id:  # its card can no longer be used
                await self._desk.store.settle(row.id, "stopped")
                settled = await self._desk.store.get(row.id)
                if settled is not None:
                    await self._desk.show(self._poster.client, settled)
        try:
            await say_stopped(self._poster, TurnOutbox(self._store, turn_id, fresh=False), turn, by, check_first=True)
        except SlackPostError as exc:
            log.warning("stop notice not posted turn_id=%s slack_error=%s", turn_id, exc.error)
        if not await take_back(self._poster, self._sessions, turn, self._working):
            await self._poster.react(turn.channel_id, turn.message_ts, self._stopped)
        await self._store.finish_turn(turn_id, "stopped", f"stopped by {by}")
        log.info("stop ended for a turn no process ran turn_id=%s channel=%s by=%s", turn_id, turn.channel_id, by)


async def withdraw_ended(
    letta: Callable[[], Awaitable[LettaClient]], approvals: ApprovalStore, turn_ids: list[int], reason: str
) -> LettaError | None:
    """Settle the open requests of turns ended otherwise than by a stop (their workspace removed the app) and
    `withdraw` them, within CANCEL_DEADLINE: such an end never waits on a Letta that does not answer. The error
    when a denial did not reach Letta (a TIMEOUT at the deadline), for `workspaces remove` to say what Letta did."""
    ended = []
    for turn_id in turn_ids:
        rows = [r for r in await approvals.for_turn(turn_id) if r.outcome is None]
        for row in rows:
            await approvals.settle(row.id, "stopped")  # its card can no longer be used
        ended += [turn_id] if rows else []
    if not ended:
        return None
    try:
        async with asyncio.timeout(CANCEL_DEADLINE) as limit:
            client = await letta()
            # Once a denial has gone through, the deadline is lifted before the next request is recorded: it never
            # cuts a request's denial between its record and its send, which nothing would look at again.
            failed = [await withdraw(client, approvals, turn_id, reason, lift=lambda: limit.reschedule(None))
                      for turn_id in ended]
    except TimeoutError:
        log.warning("letta approvals not withdrawn turn_ids=%s error=TimeoutError", ",".join(map(str, ended)))
        return LettaError(Kind.TIMEOUT, f"no answer within {CANCEL_DEADLINE:g} seconds")
    except LettaError as exc:
        log.warning("letta approvals not withdrawn turn_ids=%s error=LettaError kind=%s", ",".join(map(str, ended)),
                    exc.kind)
        return exc
    return next((error for error in failed if error is not None), None)


async def withdraw(
    client: LettaClient, approvals: ApprovalStore, turn_id: int, reason: str, poster: SlackPoster | None = None,
    lift: Callable[[], None] | None = None,
) -> LettaError | None:
    """Deny each request of the ended turn that no decision was sent for, with `reason`: the agent takes messages
    again. An App Server ended the turn when its socket closed: nothing waits there. The first error of a denial
    that did not reach Letta. `poster`: where the thread is told of a request left pending (none once the app is
    removed from the workspace). Requests whose decision went before are looked for in history (`_deny_waiting`).
    `lift`: called when Letta has answered a denial, before the next request is recorded."""
    if isinstance(client, AppServerLetta):
        return None
    failed: LettaError | None = None
    # By request: one send may ask again once an earlier request of it was decided, and that one's sent decision
    # says nothing of the later request still waiting.
    requests: dict[tuple[str, str], list[Approval]] = {}
    for row in await approvals.for_turn(turn_id):
        requests.setdefault((row.asked.step, row.asked.request_id), []).append(row)
    went: list[Approval] = []  # a decision or a denial was sent before this end
    for rows in requests.values():
        if any(r.sent_at is not None or r.outcome not in (None, "stopped") for r in rows):
            went += [r for r in rows if r.sent_at is not None]
            continue  # a decision may have reached Letta: denying after it would start another turn
        if not all([await approvals.sending(r.id) for r in rows]):
            continue
        a = rows[0].asked
        calls = tuple(ToolCall(r.asked.tool_call_id, r.asked.tool_name, r.asked.arguments) for r in rows)
        request = ApprovalRequest(a.agent_name, a.agent_id, a.step, calls, a.request_id, a.conversation_id)
        error = await _answered(client, request, EndedDenials(approvals, a, poster, lift), reason, lift)
        failed = failed or error
    return await _deny_waiting(client, approvals, went, reason, poster, lift) or failed


async def _deny_waiting(
    client: LettaClient, approvals: ApprovalStore, went: list[Approval], reason: str, poster: SlackPoster | None,
    lift: Callable[[], None] | None,
) -> LettaError | None:
    """Requests the turn's agent made after a decision or denial that went before this end, whose answer nobody read
    (its process died first, or a deadline cut it), still waiting on Letta: each recorded and denied as the others
    are. Only requests after those decisions' tool returns: one a decision was recorded as sent for is never denied
    again, as it may be in its model step still (Letta would take a second decision and run another turn), which
    history is read until it shows ended (`still_waiting`'s `sent`). The first error, once every agent (conversation)
    was looked after, all at once."""
    chains: dict[tuple[str, str | None], list[Approval]] = {}
    for row in went:
        chains.setdefault((row.asked.agent_id, row.asked.conversation_id), []).append(row)
    # Read at once, each able to wait PATIENCE: one after another, N busy agents would hold the channel N waits. One
    # chain's failure never skips another agent's: each thread is told of its own.
    # Each chain runs to its end before anything is raised, so none goes on denying after its caller gave up.
    results = await asyncio.gather(*(_deny_chain(client, approvals, rows, reason, poster, lift)
                                     for rows in chains.values()), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, LettaError):
            raise result
    return next((r for r in results if isinstance(r, LettaError)), None)


async def _deny_chain(
    client: LettaClient, approvals: ApprovalStore, rows: list[Approval], reason: str, poster: SlackPoster | None,
    lift: Callable[[], None] | None,
) -> LettaError | None:
    """`_deny_waiting` for one agent's (conversation's) decisions that went: the error that left it unfinished, its
    thread told when what waits could not be read."""
    agent_id, conversation = rows[0].asked.agent_id, rows[0].asked.conversation_id
    sent = {r.asked.tool_call_id for r in rows}
    # Only a run begun since the first of these decisions went can be one of them or the agent's answer to it: an
    # older run (another thread's send, one Letta never ended) says nothing of what this stop left waiting.
    since = datetime.fromtimestamp(min(r.sent_at or 0.0 for r in rows), UTC)
    try:
        found = await still_waiting(client, agent_id, conversation, sorted(sent), since, sent=sent)
    except LettaError as error:
        log.warning("letta history not read for an ended stop agent=%s kind=%s", agent_id, error.kind)
        if poster is not None:  # a request may wait on Letta: the thread is told how it is cleared, by cause
            why = error.detail if isinstance(error, Undecided) else "the agent's history in Letta could not be read"
            going = error.waited if isinstance(error, Undecided) and error.going else None
            await tell_may_be_pending(poster, rows[-1].asked, sorted(sent), why, going)
        return error
    for question in found:
        if any(c.tool_call_id in sent for c in question.calls):
            continue
        a = rows[-1].asked
        request = ApprovalRequest(a.agent_name, agent_id, a.step, question.calls, question.request_id, conversation)
        denials = EndedDenials(approvals, a, poster, lift)
        if not await denials.record(request):  # the deadline holds unless Letta has answered a denial before
            continue  # marked as sent before: its denial may have gone
        log.info("letta request found waiting after an ended stop agent=%s calls=%s", agent_id,
                 ",".join(c.tool_call_id for c in question.calls))
        refused = await _answered(client, request, denials, reason, lift)
        if refused is not None:
            return refused
    return None


async def _answered(
    client: LettaClient, request: ApprovalRequest, denials: EndedDenials, reason: str, lift: Callable[[], None] | None
) -> LettaError | None:
    """`deny`, the removal's deadline lifted once Letta has answered it, with a new request or a plain reply: a
    request recorded after that is never cut between its record and its send."""
    error = await deny(client, request, denials, reason)
    if error is None and lift is not None:
        lift()
    return error


class EndedDenials:
    """An ended turn's `Denials`: a request its agent makes in answer to a denial is recorded as the turn's, in its
    thread, before it is denied in turn."""

    def __init__(
        self, approvals: ApprovalStore, first: Asked, poster: SlackPoster | None, lift: Callable[[], None] | None
    ) -> None:
        self._approvals, self._first, self._poster, self._lift = approvals, first, poster, lift

    async def denying(self, request: ApprovalRequest) -> bool:
        """A request in Letta's answer to a denial: Letta has answered, so the removal's deadline is lifted first."""
        if self._lift is not None:
            self._lift()
        return await self.record(request)

    async def record(self, request: ApprovalRequest) -> bool:
        """Recorded as the turn's and marked as being sent, the deadline not lifted here: it already is once a denial
        had Letta's answer (`_answered`), and holds for the first denial of a request found in history."""
        return await self._approvals.denying([
            replace(self._first, step=request.step, tool_call_id=c.tool_call_id, request_id=request.request_id,
                    tool_name=c.name, arguments=c.arguments)
            for c in request.calls
        ])

    async def left_pending(self, request: ApprovalRequest, rounds: int) -> None:
        if self._poster is not None:
            await tell_left_pending(self._poster, self._first.channel_id, self._first.thread_ts, request, rounds)
