"""A Stop that lands right after a person decided, while the turn takes itself back from the wait (its session
set back to `processing`, a Slack round trip), settles the request as stopped: the call is denied on Letta ("the
turn was stopped"), so its card must say it was not used rather than keep "Approved by ..."."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from bridge.approvals import TurnApprovals
from tests.unit.test_approval_wait_ended import Waiting, card_waits, with_a_waiting_card


class SlowSessions:
    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.processing = asyncio.Event()
        self.release = asyncio.Event()

    async def set(self, channel: str, thread_ts: str, status: str, *args: Any, **kwargs: Any) -> bool:
        self.statuses.append(status)
        if status == "processing":
            self.processing.set()
            await self.release.wait()  # Slack answering assistant.threads.setStatus
        return True


def test_a_stop_just_after_an_approval_says_on_the_card_that_the_call_was_not_used(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import tests.unit.test_approval_wait_ended as rig

    class Recorded(rig.FakeSlack):  # type: ignore[misc,name-defined]
        def __enter__(self) -> Any:
            _SLACK.append(super().__enter__())
            return _SLACK[-1]

    monkeypatch.setattr(rig, "FakeSlack", Recorded)

    async def body(w: Waiting) -> tuple[str | None, str]:
        a: TurnApprovals = w.approvals
        sessions = SlowSessions()
        a._sessions = sessions  # type: ignore[assignment]
        deciding = asyncio.ensure_future(a.decide(w.request))
        await card_waits(w.deadline)
        [row] = await a._desk.store.for_turn(a._turn_id)
        assert await a._desk.store.decide(row.id, "U1", True, "")  # the asker approves
        a._desk.wake(row.id)
        await asyncio.wait_for(sessions.processing.wait(), 5)
        a._running.stopped_by = "U1"  # Stop pressed: the turn's task is cancelled
        deciding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deciding
        assert a.stopped  # Approving.decide now withdraws: the call is denied on Letta ("the turn was stopped")
        after = await a._desk.store.get(row.id)
        assert after is not None
        updates = [c for c in _slack(a).calls_to("chat.update")]
        last = json.dumps(updates[-1].args.get("blocks")) if updates else ""
        return after.outcome, last

    outcome, card = with_a_waiting_card(tmp_path, body)
    assert outcome == "stopped", f"the stopped turn's request is left open in the store (outcome={outcome!r})"
    assert "Not used" in card, f"the card does not say the approved call was not used: {card!r}"


def _slack(a: TurnApprovals) -> Any:
    return _SLACK[-1]


_SLACK: list[Any] = []
