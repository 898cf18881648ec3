"""The App Server connection drops while a tool-approval card waits for a person. Closing the socket cancels the
server's turn (README §9), so that request can never be used again: the card says so and the turn ends. Before, the
card stayed open (Approve / Deny) and the turn waited for a person for up to APPROVAL_TIMEOUT_SECONDS (900 s by
default); the thread heard nothing until someone pressed a button."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import Rig, app_server_rig
from tests.fakes.appserver import FakeAppServer


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeAppServer]]:
    with app_server_rig(tmp_path) as rig:
        yield rig


def test_a_card_whose_turn_the_server_ended_with_the_connection_does_not_keep_waiting(
    rig: Rig[FakeAppServer],
) -> None:
    root = rig.mention("please write the file")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.letta.drop_connections()  # the server side closes the socket: its turn (and the approval request) end
    ends = time.monotonic() + 15
    while time.monotonic() < ends and rig.status(root["ts"]) not in ("done", "failed", "error"):
        time.sleep(0.25)
    card = rig.cards(root["ts"])[0]
    assert rig.status(root["ts"]) != "running", (
        f"15 s after the connection dropped the turn still waits on a card nobody can use: status="
        f"{rig.status(root['ts'])!r}, card updates={rig.updates(card)}, thread={rig.replies(root['ts'])}"
    )
    [update] = rig.updates(card)
    assert "no longer waited for this decision" in update and "closed, which ended the agent's turn" in update
    assert any("dropped while alice was answering" in reply for reply in rig.replies(root["ts"]))


def test_a_card_whose_turn_ended_while_slack_was_still_answering_its_post_says_so(rig: Rig[FakeAppServer]) -> None:
    """The connection drops after the card landed in Slack and before Slack's answer (with its ts) reached the
    bridge: the post is let finish and recorded, so that the card can be told it is over (before, the wait was
    cancelled mid-post, the ts lost, and the card kept its buttons)."""
    rig.slack.answer_delays["chat.postMessage"] = 1.5
    root = rig.mention("please write the file")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.letta.drop_connections()  # Slack has not answered the card's post yet
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "failed", 15)
    [card] = rig.cards(root["ts"])
    rig.slack.wait_for(lambda: len(rig.updates(card)) == 1, 5)
    assert "closed, which ended the agent's turn" in rig.updates(card)[0]
