"""An App Server card whose turn ended with its socket (`TurnApprovals.decide_unless`, given `ToolAsked.ended`)
ends its wait undecided; the turn then goes on (its failure is posted, a bridge-played group asks its next
member), and gets back what a decision gives it after the wait: its deadline on, its lent turn slot, its session
`processing`. Before, all three were skipped: the turn ran on with no deadline and without its MAX_CONCURRENT_TURNS
slot. A bridge shutting down while a card waits leaves the session `suspended` (the card stays for the next run)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bridge.approval_desk import ApprovalDesk
from bridge.approvals import TurnApprovals
from bridge.domain import ApprovalRequest, ToolCall, Turn
from bridge.slack.post import SlackPoster
from bridge.stopping import RunningTurn
from bridge.store import open_store
from bridge.turn_slot import Slot
from tests.fakes.slack import FakeSlack

R = TypeVar("R")
SETTINGS = dict(approval_timeout_seconds=60, turn_stop_poll_seconds=0.05, turn_deadline_seconds=30, slack_agents={})


class Sessions:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    async def set(self, channel: str, thread_ts: str, status: str, *args: Any, **kwargs: Any) -> bool:
        self.statuses.append(status)
        return True


@dataclass
class Waiting:
    """A turn whose card waits for a person: its approvals, the request, its deadline (off while the card waits), its
    slot and the session statuses set."""

    approvals: TurnApprovals
    request: ApprovalRequest
    deadline: asyncio.Timeout
    slot: Slot
    sessions: Sessions


def with_a_waiting_card(tmp_path: Path, body: Callable[[Waiting], Awaitable[R]]) -> R:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")

        async def main() -> R:
            store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
            await store.open()
            try:
                ts = slack.add_message("C1", "<@UBOT> write it")
                turn = Turn("T1", "C1", ts, ts, "U1", "write it", "Ev1")
                turn_id = await store.accept_turn(turn, "otid-1")
                assert turn_id is not None and await store.take_turn(turn_id)
                slot = Slot(asyncio.Semaphore(1))
                await slot.take()
                running = RunningTurn(turn_id, "T1", "C1", ts, session=True)
                running.sending.add("agent-1")
                sessions = Sessions()
                poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
                desk = ApprovalDesk(store, SimpleNamespace(**SETTINGS))  # type: ignore[arg-type]
                approvals = TurnApprovals(
                    desk, poster, sessions, turn, turn_id, running, 60, slot=slot  # type: ignore[arg-type]
                )
                request = ApprovalRequest("alice", "agent-1", "agent-1", (ToolCall("call-1", "Write", "{}"),),
                                          "req-1", "conv-1")
                async with asyncio.timeout(30) as deadline:
                    approvals.deadline = deadline
                    return await body(Waiting(approvals, request, deadline, slot, sessions))
            finally:
                await store.close()

        return asyncio.run(main())


async def card_waits(deadline: asyncio.Timeout) -> None:
    """Until the card is posted and its wait has begun (the turn's deadline off)."""
    for _ in range(200):
        await asyncio.sleep(0.02)
        if deadline.when() is None:
            return
    raise AssertionError("the card's wait never began")


def test_a_card_ended_with_its_socket_gives_the_turn_back_its_deadline_slot_and_session(tmp_path: Path) -> None:
    async def body(w: Waiting) -> tuple[float | None, bool, list[str]]:
        over = asyncio.Event()

        async def ended() -> None:
            await over.wait()

        deciding = asyncio.ensure_future(w.approvals.decide_unless(w.request, ended))
        await card_waits(w.deadline)
        over.set()  # the server ended the turn with its socket
        assert await deciding is None
        when = w.deadline.when()
        return None if when is None else when - asyncio.get_running_loop().time(), w.slot._held, w.sessions.statuses

    left, held, statuses = with_a_waiting_card(tmp_path, body)
    assert left is not None, "the turn goes on after the ended card with its TURN_DEADLINE_SECONDS off for good"
    assert held, "the turn goes on after the ended card without its MAX_CONCURRENT_TURNS slot"
    assert statuses[-1] == "processing", f"the session still says {statuses[-1]!r} while the turn goes on"


def test_a_bridge_shutting_down_while_a_card_waits_leaves_the_session_suspended(tmp_path: Path) -> None:
    async def body(w: Waiting) -> list[str]:
        deciding = asyncio.ensure_future(w.approvals.decide_unless(w.request, None))
        await card_waits(w.deadline)
        deciding.cancel()  # the bridge stopping: the turn stays recorded for the next start
        with contextlib.suppress(asyncio.CancelledError):
            await deciding
        assert not w.approvals.stopped
        return w.sessions.statuses

    statuses = with_a_waiting_card(tmp_path, body)
    assert statuses[-1] == "suspended", f"the bridge stopped while the card waits, and the session says {statuses}"
