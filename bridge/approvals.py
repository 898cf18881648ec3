"""Tool approvals in a Slack thread: the cards a turn posts, the decisions people make on them, and the turn
waiting for those decisions.

- `TurnApprovals` is a turn's `Approvals` (domain.py): each tool call an agent asks about is recorded in the store
  (`approvals` table) before its card is posted under the agent's name; the thread's session is `suspended` while
  it waits. The wait holds no Slack ack and blocks no other thread (it is the turn's own task); it does not count
  against the turn's deadline, and it ends at the decision or at APPROVAL_TIMEOUT_SECONDS, denied with a reason.
- `ApprovalDesk` decides: who may (SLACK_APPROVE_BY), then the store's conditional UPDATE, which only the first
  decision wins (a double click, two people at once, Slack retrying, a timeout racing a click, another process);
  only then is the waiting turn woken (at once in this process, within TURN_STOP_POLL_SECONDS in another) and the
  card updated in place to say who decided what and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.domain import AgentFailure, ApprovalRequest, Decision, PendingApproval, ToolCall, Turn
from bridge.letta.client import DEFAULT_CONVERSATION as DEFAULT
from bridge.letta.errors import PENDING, upper_first
from bridge.slack.approvals import (
    already,
    card_blocks,
    card_lines,
    card_text,
    decided_blocks,
    may_decide,
    who_may_decide,
)
from bridge.slack.failures import FAILURES, slack_error
from bridge.slack.post import Part, SlackPoster
from bridge.slack.sessions import Sessions
from bridge.stopping import ApprovalWithdrawn, RunningTurn
from bridge.store.approvals import Approval, ApprovalStore, Asked
from bridge.store.base import Store
from bridge.tasks import unless_ended
from bridge.turn_slot import Slot

log = logging.getLogger(__name__)

TIMED_OUT = "Nobody approved this tool call within {minutes:g} minutes, so it was denied."
GONE = "This approval is no longer known to the bridge."
NOT_YOURS = "Only {who} may decide on this tool call."
HERE = "Decide on its card above in this thread, then ask again."
ELSEWHERE = "Decide on its card, in a thread of {channel}, then ask again."
Pressed = Literal["approve", "deny"]


class ApprovalDesk:
    """The decisions, once each, and the turns of this process that wait for them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = ApprovalStore(store)
        self._base = store
        self._settings = settings
        self._waiting: dict[int, asyncio.Event] = {}

    async def press(
        self,
        client: AsyncWebClient,
        team: str,
        user: str,
        approval_id: int,
        pressed: Pressed,
        reason: str,
        may_configure: Callable[[str], Awaitable[bool]],
        show: bool = True,
    ) -> str | None:
        """Decide if `user` may and nobody did before; None when decided, else what to tell `user` (only them).
        The card is updated here unless `show` is False (the caller updates it after answering Slack), and then
        what to tell is plain text (the Deny modal's error)."""
        row = await self.allowed(team, user, approval_id, may_configure, plain=not show)
        if isinstance(row, str):
            return row
        if not await self.store.decide(approval_id, user, pressed == "approve", reason):
            decided = await self.store.get(approval_id)
            return already(decided, user, not show) if decided and decided.decided else GONE
        log.info("approval decided approval_id=%s by=%s decision=%s", approval_id, user, pressed)
        self.wake(approval_id)
        decided = await self.store.get(approval_id)
        if decided is not None and show:
            await self.show(client, decided)
        return None

    async def allowed(
        self,
        team: str,
        user: str,
        approval_id: int,
        may_configure: Callable[[str], Awaitable[bool]],
        plain: bool = False,
    ) -> Approval | str:
        """The open request `user` may decide, or what to tell them (`plain`: as plain text, for the Deny modal)."""
        row = await self.store.get(approval_id)
        if row is None or row.asked.team_id != team:
            return GONE
        if row.decided or row.outcome is not None:
            return already(row, user, plain)
        s = self._settings
        verdict = may_decide(s.slack_approve_by, user, row.asked.asked_by, s.slack_approve_users)
        if verdict is None:
            verdict = await may_configure(row.asked.channel_id)
        if not verdict:
            log.info("approval refused approval_id=%s user=%s", approval_id, user)
            who = who_may_decide(s.slack_approve_by, row.asked.asked_by, s.slack_approve_users, plain)
            return NOT_YOURS.format(who=who)
        return row

    async def refused(self, turn: Turn, failure: AgentFailure, channel_name: Callable[[str], Awaitable[str]]) -> str:
        """What to tell `turn`'s thread when Letta refused the agent's message because it waits for a decision:
        where its card is, when it is one of the bridge's (where threads are not conversations, it may be in
        another channel); the failure's own words otherwise (another client's request)."""
        if failure.agent_id is None:
            return failure.message
        thread = (turn.team_id, turn.channel_id, turn.thread_ts)
        where = await self._where(turn, failure.agent_id, await self._base.conversation(thread, failure.agent_id),
                                  channel_name)
        if where is None:
            return failure.message
        return f"{PENDING.format(subject=upper_first(failure.agent_name or 'the agent'))} {where}"

    async def _where(
        self, turn: Turn, agent_id: str, conversation: str | None, channel_name: Callable[[str], Awaitable[str]]
    ) -> str | None:
        for row in await self.store.waiting_for(turn.team_id, agent_id):
            a = row.asked
            if (a.conversation_id or DEFAULT) != (conversation or DEFAULT):
                continue  # a request in another conversation blocks only that one
            if (a.channel_id, a.thread_ts) == (turn.channel_id, turn.thread_ts):
                return HERE
            return ELSEWHERE.format(channel="this channel" if a.channel_id == turn.channel_id
                                    else "#" + await channel_name(a.channel_id))
        return None

    def wake(self, approval_id: int) -> None:
        event = self._waiting.get(approval_id)
        if event is not None:
            event.set()

    async def wait(self, ids: list[int], deadline: float) -> list[Approval]:
        """Until every request is decided; at `deadline` (a loop time) the undecided ones are denied."""
        loop = asyncio.get_running_loop()
        poll = self._settings.turn_stop_poll_seconds or 2.0
        event = asyncio.Event()
        for approval_id in ids:
            self._waiting[approval_id] = event
        try:
            while True:
                event.clear()
                rows = [row for row in [await self.store.get(i) for i in ids] if row is not None]
                if any(row.outcome == "stopped" and not row.decided for row in rows):  # withdrawn elsewhere
                    raise ApprovalWithdrawn(f"approval_ids={','.join(str(r.id) for r in rows)}")
                undecided = [row for row in rows if not row.decided]
                if not undecided:
                    return rows
                left = deadline - loop.time()
                if left <= 0:
                    minutes = self._settings.approval_timeout_seconds / 60
                    for row in undecided:
                        await self.store.decide(row.id, "", False, TIMED_OUT.format(minutes=round(minutes, 1)))
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(poll, left)):
                        await event.wait()
        finally:
            for approval_id in ids:
                self._waiting.pop(approval_id, None)

    async def show(self, client: AsyncWebClient, row: Approval, refused: str | None = None) -> None:
        """The card updated in place: the request as it was asked, and what became of it. Best effort."""
        if not row.card_ts:
            return
        a = row.asked
        try:
            await client.chat_update(
                channel=a.channel_id,
                ts=row.card_ts,
                text=card_text(a.agent_name, a.tool_name, row.id),
                blocks=list(decided_blocks(a.agent_name, a.tool_name, a.arguments, card_lines(row, refused))),
            )
        except FAILURES as exc:
            log.warning("slack approval card not updated approval_id=%s error=%s", row.id, slack_error(exc))


class TurnApprovals:
    """One turn's `Approvals`: its cards, its waits, what became of its decisions."""

    def __init__(
        self,
        desk: ApprovalDesk,
        poster: SlackPoster,
        sessions: Sessions,
        turn: Turn,
        turn_id: int,
        running: RunningTurn,
        timeout: float,
        resumed: bool = False,
        before_card: Callable[[], Awaitable[None]] | None = None,
        slot: Slot | None = None,
    ) -> None:
        self._slot = slot  # given back while the turn only waits for a person
        self._desk = desk
        # A card is a new message in the thread: what the turn owes before it is posted first (post_order.py).
        self._before_card = before_card
        self._poster = poster
        self._sessions = sessions
        self._turn = turn
        self._turn_id = turn_id
        self._running = running
        self._timeout = timeout
        self._resumed = resumed
        self.deadline: asyncio.Timeout | None = None  # the turn's own: moved on by the time spent waiting
        self._waits = 0  # the turn's cards being waited on now
        self._left: float | None = None  # the deadline's time left when the first of them began

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        decided = await self.decide_unless(request, None)
        assert decided is not None, "only a wait given `ended` ends undecided"
        return decided

    async def decide_unless(
        self, request: ApprovalRequest, ended: Callable[[], Awaitable[None]] | None
    ) -> tuple[Decision, ...] | None:
        """`decide`, or None once `ended` returns first: the turn that asked is over where it runs (the App Server
        ended it with its socket), so nobody's decision can be used; the turn goes on, its wait over."""
        rows = await self._desk.store.ask([self._asked(request, call) for call in request.calls])
        ids = {c.tool_call_id for c in request.calls}
        rows = [row for row in rows if row.asked.tool_call_id in ids]
        try:
            for row in rows:
                if row.card_ts is None and not row.decided:
                    await self._card(row)  # waits for the replies owed before it: a stop may land meanwhile
        except asyncio.CancelledError:
            await self._if_stopped(rows)
            raise
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The timeout runs from when the question was first asked, across restarts.
        ends = started + min(row.created_at for row in rows) + self._timeout - time.time()
        # The wait for a person does not count against the turn's deadline: it is off while any card of the turn
        # waits (broadcast and supervisor agents may each wait on one at once), and on again, with the time it had
        # left, once none does.
        self._waits += 1
        if self._slot is not None:  # lent out while every send of the turn in flight waits on a card
            self._slot.waiting += 1
            self._slot.lend(len(self._running.sending))
        if self._waits == 1:
            deadline = self.deadline
            when = deadline.when() if deadline is not None else None
            if deadline is not None and when is not None:  # off already: a card's wait just ended
                self._left = when - started
                deadline.reschedule(None)
            await self._suspend(True)
        try:
            decided = await unless_ended(self._desk.wait([row.id for row in rows], ends), ended)
        except asyncio.CancelledError:
            await self._if_stopped(rows)
            raise
        finally:
            self._waits -= 1
            if self._slot is not None:
                self._slot.waiting -= 1
        await self._back_from_waiting()
        if decided is None:
            return None
        for row in decided:
            if not row.decided_by:  # the timeout decided: its card says so
                await self._desk.show(self._poster.client, row)
        by_call = {row.asked.tool_call_id: row for row in decided}
        return tuple(
            Decision(c.tool_call_id, bool(by_call[c.tool_call_id].approve), by_call[c.tool_call_id].reason)
            for c in request.calls
        )

    async def _back_from_waiting(self) -> None:
        """The turn works again: its slot taken back, and once no card of it waits, its deadline on with the time
        it had left and its session `processing`."""
        if self._slot is not None:
            await self._slot.back()  # at once, over the limit if every slot is taken (turn_slot.py)
        if self._waits == 0:  # no other card began to wait meanwhile
            deadline, left = self.deadline, self._left
            if deadline is not None and left is not None and deadline.when() is None and not deadline.expired():
                deadline.reschedule(asyncio.get_running_loop().time() + left)
            await self._suspend(False)

    @property
    def stopped(self) -> bool:
        """Stopped by a person, or past the turn's deadline while its card was being posted (the wait for a person,
        which the deadline does not count, had not begun): either way nobody's decision will reach Letta."""
        deadline = self.deadline
        return self._running.stopped_by is not None or (deadline is not None and deadline.expired())

    async def sending(self, request: ApprovalRequest) -> None:
        for row in await self._rows(request):
            await self._desk.store.sending(row.id)

    async def settled(self, request: ApprovalRequest, refused: str | None = None) -> None:
        for row in await self._rows(request):
            await self._desk.store.settle(row.id, "stale" if refused is not None else "sent")
            if refused is not None:
                await self._desk.show(self._poster.client, await self._known_card(row), refused)

    async def resumed(self, step: str) -> PendingApproval | None:
        rows = [row for row in await self._desk.store.for_step(self._turn_id, step) if row.outcome is None]
        if not rows:
            return None
        first = rows[0].asked
        calls = tuple(ToolCall(r.asked.tool_call_id, r.asked.tool_name, r.asked.arguments) for r in rows)
        request = ApprovalRequest(
            first.agent_name, first.agent_id, step, calls, first.request_id, first.conversation_id
        )
        return PendingApproval(request, any(row.sent_at is not None for row in rows))

    async def _rows(self, request: ApprovalRequest) -> list[Approval]:
        ids = {c.tool_call_id for c in request.calls}
        return [r for r in await self._desk.store.for_step(self._turn_id, request.step) if r.asked.tool_call_id in ids]

    def _asked(self, request: ApprovalRequest, call: ToolCall) -> Asked:
        t = self._turn
        return Asked(
            self._turn_id,
            request.step,
            call.tool_call_id,
            t.team_id,
            t.channel_id,
            t.thread_ts,
            request.agent_id,
            request.agent_name,
            request.conversation,
            request.request_id,
            call.name,
            call.arguments,
            t.user_id,
        )

    def _part(self, row: Approval) -> Part:
        a = row.asked
        author = self._poster.author(a.agent_name)
        blocks = card_blocks(row.id, a.agent_name, a.tool_name, a.arguments)
        text = card_text(a.agent_name, a.tool_name, row.id)
        return Part(text, author.username, author.icon_emoji, author.icon_url, blocks)

    async def _card(self, row: Approval) -> None:
        if self._before_card is not None:
            await self._before_card()
        posting = asyncio.ensure_future(self._post_card(row))
        try:
            await asyncio.shield(posting)
        except asyncio.CancelledError:  # a stop, or the turn over: whoever ends the card needs its ts recorded
            await asyncio.wait((posting,))
            if not posting.cancelled():
                posting.exception()  # a failed post is the cancel's to report, not a lost task's
            raise

    async def _post_card(self, row: Approval) -> None:
        a, t = row.asked, self._turn
        part = self._part(row)
        ts = await self._poster.post(t.channel_id, t.thread_ts, part, check_first=self._resumed, after=t.message_ts)
        await self._desk.store.card_posted(row.id, ts)
        log.info("approval card posted approval_id=%s agent=%s tool=%s", row.id, a.agent_id, a.tool_name)

    async def _known_card(self, row: Approval) -> Approval:
        """A card the bridge posted but died before recording is found in the thread, so that it can be updated."""
        if row.card_ts is not None or not self._resumed:
            return row
        t = self._turn
        ts = await self._poster.find_posted(t.channel_id, t.thread_ts, self._part(row), t.message_ts)
        if ts is None:
            return row
        await self._desk.store.card_posted(row.id, ts)
        return await self._desk.store.get(row.id) or row

    async def _suspend(self, waiting: bool) -> None:
        if self._running.session:
            t = self._turn
            await self._sessions.set(t.channel_id, t.thread_ts, "suspended" if waiting else "processing")

    async def _if_stopped(self, rows: list[Approval]) -> None:
        """The turn was cancelled: if stopped (by a person, or its deadline), these requests will never be used
        (their cards, if posted, say so); otherwise (the bridge stopping) they stay open for the turn's next run."""
        if self.stopped:
            await asyncio.shield(self._stopped(rows))

    async def _stopped(self, rows: list[Approval]) -> None:
        for row in rows:
            await self._desk.store.settle(row.id, "stopped")
            settled = await self._desk.store.get(row.id)
            if settled is not None:
                await self._desk.show(self._poster.client, settled)

