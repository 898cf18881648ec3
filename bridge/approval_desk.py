"""The approval desk: who may decide on a tool call's card (SLACK_APPROVE_BY), then the store's conditional UPDATE,
which only the first decision wins (a double click, two people at once, Slack retrying, a timeout racing a click,
another process); only then is the waiting turn woken (at once in this process, within TURN_STOP_POLL_SECONDS in
another) and the card updated in place to say who decided what and when. A turn's own cards and wait:
`approvals.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.domain import AgentFailure, Turn
from bridge.letta.client import DEFAULT_CONVERSATION as DEFAULT
from bridge.letta.errors import PENDING, upper_first
from bridge.slack.agent_names import ShownNames
from bridge.slack.approvals import already, card_lines, card_text, decided_blocks, may_decide, who_may_decide
from bridge.slack.failures import FAILURES, slack_error
from bridge.stopping import ApprovalWithdrawn
from bridge.store.approvals import Approval, ApprovalStore
from bridge.store.base import Store

log = logging.getLogger(__name__)

TIMED_OUT = "Nobody approved this tool call within {minutes:g} minutes, so it was denied."
GONE = "This approval is no longer known to the bridge."
NOT_YOURS = "Only {who} may decide on this tool call."
HERE = "Decide on its card above in this thread, then ask again."
ELSEWHERE = "Decide on its card, in a thread of {channel}, then ask again."
# A card decided whose decision never reached Letta (its sends failed on the way): no card to point people at.
DECIDED = (
    "It was already decided on its card {where}, but that decision has not reached Letta: sending it failed. Ask "
    "again in a moment; if this keeps happening, decide the tool call in Letta itself."
)
# A card decided whose decision the turn has not sent yet (it waits for a free turn slot, say).
ON_ITS_WAY = "It was decided on its card {where}, and the decision is on its way to Letta: ask again in a moment."
Pressed = Literal["approve", "deny"]


class ApprovalDesk:
    """The decisions, once each, and the turns of this process that wait for them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = ApprovalStore(store)
        self._base = store
        self._settings = settings
        self._waiting: dict[int, asyncio.Event] = {}

    @functools.cached_property
    def _shown(self) -> ShownNames:
        """Agents named on a card as their replies show them."""
        return ShownNames({name: look.display_name for name, look in self._settings.slack_agents.items()})

    async def press(
        self,
        client: AsyncWebClient,
        team: str,
        user: str,
        approval_id: int,
        pressed: Pressed,
        reason: str,
        may_configure: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """Decide if `user` may and nobody did before, then update the card; None when decided, else what to tell
        `user` (only them)."""
        row = await self.allowed(team, user, approval_id, may_configure)
        if isinstance(row, str):
            return row
        if not await self.store.decide(approval_id, user, pressed == "approve", reason):
            decided = await self.store.get(approval_id)
            return already(decided) if decided and decided.decided else GONE
        log.info("approval decided approval_id=%s by=%s decision=%s", approval_id, user, pressed)
        self.wake(approval_id)
        decided = await self.store.get(approval_id)
        if decided is not None:
            await self.show(client, decided)
        return None

    async def allowed(
        self, team: str, user: str, approval_id: int, may_configure: Callable[[str], Awaitable[bool]] | None
    ) -> Approval | str:
        """The open request `user` may decide, or what to tell them. Without `may_configure` Slack is not asked:
        a right only Slack can say (SLACK_APPROVE_BY=configurers) passes for now, to be asked when deciding (the
        Deny modal must open within its trigger's 3 s, which users.info may take longer than)."""
        row = await self.store.get(approval_id)
        if row is None or row.asked.team_id != team:
            return GONE
        if row.decided or row.outcome is not None:
            return already(row)
        s = self._settings
        verdict = may_decide(s.slack_approve_by, user, row.asked.asked_by, s.slack_approve_users)
        if verdict is None and may_configure is not None:
            verdict = await may_configure(row.asked.channel_id)
        if verdict is False:
            log.info("approval refused approval_id=%s user=%s", approval_id, user)
            who = who_may_decide(s.slack_approve_by, row.asked.asked_by, s.slack_approve_users)
            return NOT_YOURS.format(who=who)
        return row

    async def refused(self, turn: Turn, failure: AgentFailure, channel_shown: Callable[[str], Awaitable[str]]) -> str:
        """What to tell `turn`'s thread when Letta refused the agent's message because it waits for a decision:
        where its card is, when it is one of the bridge's (where threads are not conversations, it may be in
        another channel); the failure's own words otherwise (another client's request)."""
        if failure.agent_id is None:
            return failure.message
        thread = (turn.team_id, turn.channel_id, turn.thread_ts)
        where = await self._where(turn, failure.agent_id, await self._base.conversation(thread, failure.agent_id),
                                  channel_shown)
        if where is None:
            return failure.message
        subject = self._shown.name(failure.agent_name) if failure.agent_name else "the agent"
        return f"{PENDING.format(subject=upper_first(subject))} {where}"

    async def _where(
        self, turn: Turn, agent_id: str, conversation: str | None, channel_shown: Callable[[str], Awaitable[str]]
    ) -> str | None:
        # A request in another conversation blocks only that one. A card still to decide is the one to point at
        # (a request of several calls is sent once every card is decided); then one decided and not yet sent.
        rows = [r for r in await self.store.waiting_for(turn.team_id, agent_id)
                if (r.asked.conversation_id or DEFAULT) == (conversation or DEFAULT)]
        rows.sort(key=lambda r: (r.decided, r.sent_at is not None))
        for row in rows:
            a = row.asked
            here = (a.channel_id, a.thread_ts) == (turn.channel_id, turn.thread_ts)
            channel = "this channel" if a.channel_id == turn.channel_id else await channel_shown(a.channel_id)
            where = "above in this thread" if here else f"in a thread of {channel}"
            if row.decided and row.sent_at is not None:
                return DECIDED.format(where=where)
            if row.decided:
                return ON_ITS_WAY.format(where=where)
            return HERE if here else ELSEWHERE.format(channel=channel)
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
                text=card_text(self._shown.name(a.agent_name), a.tool_name, row.id),
                blocks=list(
                    decided_blocks(self._shown.name(a.agent_name), a.tool_name, a.arguments, card_lines(row, refused))
                ),
            )
        except FAILURES as exc:
            log.warning("slack approval card not updated approval_id=%s error=%s", row.id, slack_error(exc))
