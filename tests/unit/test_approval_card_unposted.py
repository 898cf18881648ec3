"""revCP: an approval card Slack would not confirm, or refused beside a card of the same request already posted.

A card whose post's outcome stayed unknown (Slack answered 500 after taking it, and the thread could not be read
back to check) denies its call, as a refused one does; the card may be in the thread all the same, so the thread
is told it no longer decides anything (not that Slack "would not post" it), and a press on it says why. A card
of the same request posted already says it was denied at once, not that nobody decided in time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.approvals import TurnApprovals
from tests.unit.test_approval_wait_ended import Waiting, with_a_waiting_card


def recorded_slacks(monkeypatch: Any) -> list[Any]:
    """The FakeSlack each waiting-card rig opens, for the test to steer."""
    import tests.unit.test_approval_wait_ended as rig

    seen: list[Any] = []

    class Recorded(rig.FakeSlack):  # type: ignore[misc,name-defined]
        def __enter__(self) -> Any:
            seen.append(super().__enter__())
            return seen[-1]

    monkeypatch.setattr(rig, "FakeSlack", Recorded)
    return seen


def test_a_card_slack_did_not_confirm_is_said_to_decide_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("bridge.slack.post.OUTCOME_WAITS", (0.01,) * 8, raising=False)
    seen = recorded_slacks(monkeypatch)
    owed: list[tuple[str, str]] = []

    async def body(w: Waiting) -> Any:
        a: TurnApprovals = w.approvals

        async def owe(source: str, text: str) -> None:
            owed.append((source, text))

        a._owe = owe
        slack = seen[-1]
        slack.land_then_fail_next("chat.postMessage", 500)  # the card lands, Slack answers 500
        slack.fail_next("conversations.replies", "internal_error", status=503, times=50)  # cannot be read back
        decisions = await a.decide(w.request)
        return decisions, slack

    decisions, slack = with_a_waiting_card(tmp_path, body)
    assert [d.approve for d in decisions] == [False]
    cards = [m for m in slack.messages("C1") if m.get("blocks") and "Approve" in str(m.get("blocks"))]
    assert cards, "the card landed in the thread, its buttons live"
    [(_, said)] = owed
    assert "did not confirm the approval card was posted (http_500)" in said, said
    assert "no longer decides anything" in said and "would not post" not in said, said


def test_a_posted_sibling_card_does_not_say_nobody_decided_in_time(tmp_path: Path, monkeypatch: Any) -> None:
    """docs/approvals.md: "a card of the same request posted already says it was denied". Its call was denied at
    once because Slack refused the other card, not for want of a decision within APPROVAL_TIMEOUT_SECONDS."""
    import dataclasses

    from bridge.domain import ToolCall

    seen = recorded_slacks(monkeypatch)

    async def body(w: Waiting) -> Any:
        a: TurnApprovals = w.approvals
        slack = seen[-1]
        cards = 0

        async def before_card() -> None:
            nonlocal cards
            cards += 1
            if cards == 2:  # the second card of the request: Slack refuses its blocks
                slack.fail_next("chat.postMessage", "invalid_blocks")

        a._before_card = before_card
        request = dataclasses.replace(w.request, calls=(ToolCall("call-1", "Write", "{}"),
                                                        ToolCall("call-2", "Read", "{}")))
        decisions = await a.decide(request)
        return decisions, slack

    decisions, slack = with_a_waiting_card(tmp_path, body)
    assert [d.approve for d in decisions] == [False, False]
    updates = [str(c.args.get("blocks")) for c in slack.calls_to("chat.update")]
    assert updates, "the posted card was closed"
    assert "Nobody decided in time" not in updates[-1], (
        f"the posted card says it timed out, a second after it was posted: {updates[-1]}"
    )
    assert "denied at once, as an approval card of this request could not be posted in Slack" in updates[-1]
