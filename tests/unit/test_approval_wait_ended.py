"""An App Server card whose turn ended with its socket (`_unless_ended`) cancels `TurnApprovals.decide` mid-wait;
the turn then goes on (its failure is posted, a bridge-played group asks its next member), and gets back what a
decision gives it after the wait: its deadline on, its lent turn slot, its session `processing`. Before, all three
were skipped: the turn ran on with no deadline and without its MAX_CONCURRENT_TURNS slot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.approvals import ApprovalDesk, TurnApprovals
from bridge.domain import ApprovalRequest, ToolCall, Turn
from bridge.letta.appserver.turn import ToolAsked
from bridge.letta.appserver_runner import _unless_ended
from bridge.slack.post import SlackPoster
from bridge.stopping import RunningTurn
from bridge.store import open_store
from bridge.turn_slot import Slot
from tests.fakes.slack import FakeSlack

SETTINGS = dict(approval_timeout_seconds=60, turn_stop_poll_seconds=0.05, turn_deadline_seconds=30)


class Sessions:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    async def set(self, channel: str, thread_ts: str, status: str, *args: Any, **kwargs: Any) -> bool:
        self.statuses.append(status)
        return True


def test_a_card_ended_with_its_socket_gives_the_turn_back_its_deadline_slot_and_session(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        slack.add_channel("C1", "general")

        async def main() -> tuple[float | None, bool, list[str]]:
            store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
            await store.open()
            try:
                ts = slack.add_message("C1", "<@UBOT> write it")
                turn = Turn("T1", "C1", ts, ts, "U1", "write it", "Ev1")
                turn_id = await store.accept_turn(turn, "otid-1")
                assert turn_id is not None and await store.take_turn(turn_id)
                slots = asyncio.Semaphore(1)
                slot = Slot(slots)
                await slot.take()
                running = RunningTurn(turn_id, "T1", "C1", ts, session=True)
                running.sending.add("agent-1")
                sessions = Sessions()
                poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
                desk = ApprovalDesk(store, SimpleNamespace(**SETTINGS))  # type: ignore[arg-type]
                approvals = TurnApprovals(
                    desk, poster, sessions, turn, turn_id, running, 60, slot=slot  # type: ignore[arg-type]
                )
                over = asyncio.Event()

                async def ended() -> None:
                    await over.wait()

                asked = ToolAsked("req-1", "call-1", "Write", "{}", ended)
                request = ApprovalRequest("alice", "agent-1", "agent-1", (ToolCall("call-1", "Write", "{}"),),
                                          "req-1", "conv-1")
                loop = asyncio.get_running_loop()
                async with asyncio.timeout(30) as deadline:
                    approvals.deadline = deadline
                    deciding = asyncio.ensure_future(_unless_ended(approvals.decide(request), asked))
                    for _ in range(200):  # the card posted, the wait begun (the deadline off)
                        await asyncio.sleep(0.02)
                        if deadline.when() is None:
                            break
                    assert deadline.when() is None
                    over.set()  # the server ended the turn with its socket
                    assert await deciding is None
                    when = deadline.when()
                    left = None if when is None else when - loop.time()
                    return left, slot._held, sessions.statuses
            finally:
                await store.close()

        left, held, statuses = asyncio.run(main())
    assert left is not None, "the turn goes on after the ended card with its TURN_DEADLINE_SECONDS off for good"
    assert held, "the turn goes on after the ended card without its MAX_CONCURRENT_TURNS slot"
    assert statuses[-1] == "processing", f"the session still says {statuses[-1]!r} while the turn goes on"
