"""Tool approvals in a Slack thread: the cards a turn posts and the turn waiting for the decisions people make on
them (made once each by `ApprovalDesk`, approval_desk.py).

`TurnApprovals` is a turn's `Approvals` (domain.py): each tool call an agent asks about is recorded in the store
(`approvals` table) before its card is posted under the agent's name; the thread's session is `suspended` while it
waits. The wait holds no Slack ack and blocks no other thread (it is the turn's own task); it does not count against
the turn's deadline, and it ends at the decision or at APPROVAL_TIMEOUT_SECONDS, denied with a reason. A card Slack
will not post denies its request at once, the thread told why: nobody could decide on it, and Letta would otherwise
wait for good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bridge.approval_desk import ApprovalDesk
from bridge.domain import ApprovalRequest, Decision, PendingApproval, ToolCall, Turn
from bridge.letta.client import DEFAULT_CONVERSATION
from bridge.slack.approvals import (
    UNPOSTED,
    card_blocks,
    card_text,
    left_pending_notice,
    unknown_pending_notice,
    unposted_notice,
)
from bridge.slack.failures import SlackPostError
from bridge.slack.post import Part, SlackPoster
from bridge.slack.render import escape
from bridge.slack.sessions import Sessions
from bridge.stopping import RunningTurn
from bridge.store.approvals import Approval, Asked
from bridge.tasks import unless_ended
from bridge.turn_slot import Slot

log = logging.getLogger(__name__)


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
        owe: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._owe = owe  # a notice owed the thread (its outbox source, its words)
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
        except SlackPostError as exc:  # nobody can be asked: denied, or Letta would wait for good (409 on every send)
            return await self._unposted(request, rows, exc)
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
        try:  # a stop landing on the way back from the wait, once decided, leaves the decision unused too
            try:
                decided = await unless_ended(self._desk.wait([row.id for row in rows], ends), ended)
            finally:
                self._waits -= 1
                if self._slot is not None:
                    self._slot.waiting -= 1
            await self._back_from_waiting()
            for row in decided or ():
                if not row.decided_by:  # the timeout decided: its card says so
                    await self._desk.show(self._poster.client, row)
        except asyncio.CancelledError:
            await self._if_stopped(rows)
            raise
        return None if decided is None else self._decisions(request, decided)

    async def _unposted(
        self, request: ApprovalRequest, rows: list[Approval], failure: SlackPostError
    ) -> tuple[Decision, ...]:
        """A card Slack would not post: the request's undecided calls denied (a posted card of it says so), the
        thread told why."""
        log.warning("approval card not posted step=%s error=%s; its calls denied", request.step, failure.error)
        for row in rows:
            await self._desk.store.decide(row.id, "", False, UNPOSTED)
        decided = [await self._desk.store.get(row.id) or row for row in rows]
        for row in decided:
            if row.card_ts is not None and not row.decided_by:
                await self._desk.show(self._poster.client, row)
        unposted = [row.asked.tool_name for row in decided if row.card_ts is None]
        if self._owe is not None and unposted:
            shown = self._poster.shown_name(request.agent_name)
            words = unposted_notice(shown, unposted, failure.error, failure.unknown)
            await self._owe(f"notice:unposted:{request.step}:{decided[0].id}", words)
        return self._decisions(request, decided)

    @staticmethod
    def _decisions(request: ApprovalRequest, decided: list[Approval]) -> tuple[Decision, ...]:
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

    async def denying(self, request: ApprovalRequest) -> bool:
        return await self._desk.store.denying([self._asked(request, call) for call in request.calls])

    async def left_pending(self, request: ApprovalRequest, rounds: int) -> None:
        t = self._turn
        await tell_left_pending(self._poster, t.channel_id, t.thread_ts, request, rounds)

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
        shown = self._poster.shown_name(a.agent_name)
        blocks = card_blocks(row.id, shown, a.tool_name, a.arguments)
        text = card_text(shown, a.tool_name, row.id)
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


async def tell_left_pending(
    poster: SlackPoster, channel_id: str, thread_ts: str, request: ApprovalRequest, rounds: int
) -> None:
    """The thread told that a request the agent made after a stop's denials still waits on Letta (approving.ROUNDS
    reached); a post Slack refuses is logged, the warning already is."""
    own = request.conversation in (None, DEFAULT_CONVERSATION)  # the agent's own thread: it is blocked everywhere
    words = left_pending_notice(poster.shown_name(request.agent_name), [c.name for c in request.calls],
                                [c.tool_call_id for c in request.calls], rounds, None if own else request.conversation)
    await _tell(poster, channel_id, thread_ts, words, request.agent_id)


async def tell_may_be_pending(
    poster: SlackPoster, asked: Asked, decided_ids: list[str], why: str, going: float | None = None
) -> None:
    """The thread of `asked` (a request of the ended turn) told that the end of its stop could not read what the agent
    asked after the decisions on `decided_ids` (`why`; `going`: a run still went after that many seconds): a request
    may still wait on Letta, and how it is cleared."""
    own = asked.conversation_id in (None, DEFAULT_CONVERSATION)  # the agent's own thread: it is blocked everywhere
    words = unknown_pending_notice(poster.shown_name(asked.agent_name), decided_ids, why,
                                   None if own else asked.conversation_id, going)
    await _tell(poster, asked.channel_id, asked.thread_ts, words, asked.agent_id)


async def _tell(poster: SlackPoster, channel_id: str, thread_ts: str, words: str, agent_id: str) -> None:
    """A notice posted in the thread; a post Slack refuses is logged (the warning it follows already is)."""
    try:
        await poster.post(channel_id, thread_ts, Part(escape(words), None))
    except SlackPostError as exc:
        log.warning("left-pending notice not posted agent=%s slack_error=%s", agent_id, exc.error)
