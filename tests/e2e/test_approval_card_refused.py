"""A card Slack refuses to post (here its blocks refused) must not leave the tool call pending on Letta with no
card anywhere: that made Letta refuse every later message to the agent in the thread (409 PENDING_APPROVAL) and the
thread was told to decide on a card that did not exist. The call is denied at once, the thread told why, on 0.16.8
and on the App Server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import ASKER, Rig, app_server_rig, rest_rig
from tests.e2e.test_approvals_app_server import answers
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta

SHOUT = ("shout", '{"message": "hi"}')


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeLetta]]:
    with rest_rig(tmp_path, APPROVAL_TIMEOUT_SECONDS="2") as rig:
        yield rig


def test_a_card_slack_refused_does_not_leave_the_agent_blocked_in_the_thread(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    rig.slack.fail_next("chat.postMessage", "invalid_blocks")  # the card's post is refused
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in {"failed", "partial", "done"}, 15)
    assert not rig.cards(root["ts"])
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in {"failed", "partial", "done"}, 15)
    said = rig.replies(root["ts"])
    conflicts = [r.status for r in rig.letta.requests if r.method == "POST" and "messages" in r.path]
    assert rig.status(later["ts"]) == "done", f"the next message: {rig.status(later['ts'])}; Letta answered " \
        f"{conflicts}; the thread was told {said}; decisions sent {rig.letta.approval_decisions()}"
    assert any("denied because Slack would not post the approval card (invalid_blocks)" in s for s in said), said
    assert "PENDING_APPROVAL" not in " ".join(said) and "Decide on it" not in " ".join(said), said
    assert "could not be posted in Slack" in str(rig.letta.approval_decisions()), rig.letta.approval_decisions()


@pytest.fixture
def app_rig(tmp_path: Path) -> Iterator[Rig[FakeAppServer]]:
    with app_server_rig(tmp_path) as rig:
        yield rig


def test_on_the_app_server_a_card_slack_refused_is_answered_with_a_denial(app_rig: Rig[FakeAppServer]) -> None:
    rig = app_rig
    rig.slack.fail_next("chat.postMessage", "invalid_blocks")
    root = rig.mention("please write the file")
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in {"failed", "partial", "done"}, 15)
    assert not rig.cards(root["ts"])
    [answer] = answers(rig.letta)
    assert answer["decision"]["behavior"] == "deny" and "could not be posted" in answer["decision"]["message"]
    said = rig.replies(root["ts"])
    assert any("alice's tool call `Write` was denied because Slack" in s for s in said), said
