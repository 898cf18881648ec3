"""Deny with SLACK_APPROVE_BY=configurers while Slack is slow to say who may decide (users.info: up to 5 s a
request, a rate limit's Retry-After waited out). Slack's trigger_id lives 3 s (reference/slack/web-api/views.open.json:
expired_trigger_id, which the fake enforces) and a view submission must be acknowledged within 3 s. Found by a
review (revFA): the press asked users.info before it opened the modal, so Deny showed nothing, and the submit asked
it before the acknowledgement, so the modal showed Slack's connection error though the denial was recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.approval_rig import ASKER, STRANGER, Rig, open_rig
from tests.fakes.letta import FakeLetta

SHOUT = ("shout", '{"message": "finn says hi"}')
SLOW = 4.0  # seconds users.info takes: past the trigger's life and the submit's 3 s, within the lookup's bound
REFUSED = "Only the people who may configure this channel may decide on this tool call."
BUSY = "Slack was too busy to open the Deny form just now: press Deny again."


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeLetta]]:
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        with open_rig(tmp_path, letta, letta.base_url, letta.add_agent("finn"), SLACK_APPROVE_BY="configurers",
                      SLACK_CONFIGURE_BY="everyone") as rig:
            rig.slack.add_user(STRANGER, "sam", display_name="sam", guest="multi")  # a guest: never a configurer
            yield rig
    finally:
        letta.stop()


def _card(rig: Rig[FakeLetta]) -> tuple[dict[str, Any], Any]:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    return root, rig.cards(root["ts"])[0]


def _modal(rig: Rig[FakeLetta], card: Any, user: str) -> dict[str, Any]:
    """Press Deny as `user`; the modal Slack opened, within the trigger's 3 s."""
    started = time.monotonic()
    rig.press(card, "letta_deny_tool", user)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 1, 10)
    [opened] = rig.slack.calls_to("views.open")
    assert opened.ok and opened.at - started < 3.0, (opened.response, opened.at - started)  # not expired_trigger_id
    view = opened.args["view"]
    return json.loads(view) if isinstance(view, str) else view


def _submit(rig: Rig[FakeLetta], view: dict[str, Any], reason: str, user: str) -> None:
    started = time.monotonic()
    response = rig.submit_reason(view, reason, user)
    took = time.monotonic() - started
    assert response.status_code == 200 and "errors" not in response.text, response.text
    assert took < 3.0, f"the submit was acknowledged after {took:.1f}s"


def test_the_deny_modal_opens_while_the_trigger_lives_though_users_info_is_rate_limited(rig: Rig[FakeLetta]) -> None:
    """A rate limit on users.info (Retry-After 4, which the client waits out) does not hold the modal back."""
    _, card = _card(rig)
    rig.slack.fail_next("users.info", "ratelimited", headers={"retry-after": "4"})
    asked = len(rig.slack.calls_to("users.info"))
    _modal(rig, card, ASKER)
    assert len(rig.slack.calls_to("users.info")) == asked  # who may decide is asked on submit, not before the modal


def test_an_allowed_denial_is_acknowledged_at_once_and_sent_once_though_users_info_is_slow(
    rig: Rig[FakeLetta],
) -> None:
    """users.info answering after 4 s: the modal opens, its submit is acknowledged (closing it) within 3 s, and the
    denial, once Slack says the presser may decide, reaches Letta once with its reason and shows on the card."""
    root, card = _card(rig)
    rig.slack.answer_delays["users.info"] = SLOW
    view = _modal(rig, card, ASKER)
    _submit(rig, view, "not now", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
    [decision] = rig.letta.approval_decisions()
    assert decision["approvals"][0]["approve"] is False and decision["approvals"][0]["reason"] == "not now"
    rig.slack.wait_for(lambda: any("Denied by <@U0123ABCD>" in u and "not now" in u for u in rig.updates(card)))
    assert not [e for e in rig.slack.ephemerals if e.get("user") == ASKER]


def test_a_refused_denial_is_acknowledged_at_once_never_sent_and_the_presser_is_told_in_the_thread(
    rig: Rig[FakeLetta],
) -> None:
    """A guest's Deny opens the modal all the same; its submit is acknowledged within 3 s, the denial is never
    recorded or sent, and the guest is told in the card's thread, in the words a refused Approve press gets."""
    root, card = _card(rig)
    rig.slack.answer_delays["users.info"] = SLOW
    view = _modal(rig, card, STRANGER)
    _submit(rig, view, "no", STRANGER)
    rig.slack.wait_for(lambda: rig.told(STRANGER, REFUSED), 15)
    [told] = [e for e in rig.slack.ephemerals if e.get("user") == STRANGER]
    assert (told.get("channel"), told.get("thread_ts")) == (rig.channel, root["ts"])
    rig.press(card, "letta_approve_tool", STRANGER)  # the same words on the Approve button
    rig.slack.wait_for(lambda: len([e for e in rig.slack.ephemerals if e.get("user") == STRANGER]) == 2, 15)
    assert {e["text"] for e in rig.slack.ephemerals if e.get("user") == STRANGER} == {REFUSED}
    assert rig.letta.approval_decisions() == [] and rig.status(root["ts"]) == "running"
    assert not any("Denied" in u for u in rig.updates(card))


def test_a_deny_modal_rate_limited_past_the_trigger_is_told_in_the_thread_and_opens_when_pressed_again(
    rig: Rig[FakeLetta],
) -> None:
    """views.open answered 429 with Retry-After 4: not made again with a trigger that would be dead by then; the
    presser is told at once in the card's thread, only them, to press Deny again, which then opens the modal."""
    root, card = _card(rig)
    rig.slack.fail_next("views.open", "ratelimited", headers={"retry-after": "4"})
    started = time.monotonic()
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: rig.told(ASKER, BUSY), 3.0)
    [told] = [e for e in rig.slack.ephemerals if e.get("user") == ASKER]
    assert (told.get("channel"), told.get("thread_ts")) == (rig.channel, root["ts"])
    assert time.monotonic() - started < 3.0
    time.sleep(4.5)  # past the Retry-After: nothing was made again with the dead trigger
    assert len(rig.slack.calls_to("views.open")) == 1
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 2, 10)
    assert rig.slack.calls_to("views.open")[-1].ok
    assert rig.letta.approval_decisions() == [] and rig.status(root["ts"]) == "running"
