"""What the Deny modal says under its reason when the press is refused: Slack shows a view submission's error as
plain text, so the words cannot lean on a mention, a date token or an emoji code, and still say what became of the
request."""

from __future__ import annotations

import re

import pytest

from bridge.slack.approvals import already, who_may_decide
from bridge.store.approvals import Approval, Asked

MARKUP = re.compile(r"<[@!#][^>]*>|:[a-z_]+:")  # <@U…>, <!date^…>, <#C…>, :emoji:
ASKED = Asked(1, "s", "call-1", "T1", "C1", "1.0", "agent-1", "finn", None, "req-1", "shout", "{}", "U0ASKER01")


def _row(decided_by: str | None, approve: bool | None, outcome: str | None = None) -> Approval:
    decided_at = 1796619684.0 if approve is not None or decided_by == "" else None
    return Approval(1, ASKED, "1.1", 0.0, decided_by, approve, "too loud", decided_at, None, outcome)


@pytest.mark.parametrize(
    ("row", "user", "words"),
    [
        (_row("U0ASKER01", True), "U0ASKER01", "Already decided: approved by you."),
        (_row("U0OTHER01", True), "U0ASKER01", "Already decided: approved by someone else."),
        (_row("U0OTHER01", False), "U0ASKER01", "Already decided: denied by someone else: too loud."),
        (_row("", False), "U0ASKER01", "Already decided: nobody decided in time, so it was denied."),
        (_row(None, None, "stopped"), "U0ASKER01", "Already decided: not used: the turn was stopped."),
    ],
)
def test_an_earlier_decision_is_said_in_plain_words_for_the_modal(row: Approval, user: str, words: str) -> None:
    assert already(row, user, plain=True) == words
    assert MARKUP.search(already(row, user)), "the ephemeral (mrkdwn) words changed"


@pytest.mark.parametrize("by", ["asker", "configurers", "users"])
def test_who_may_decide_is_said_without_mentions_for_the_modal(by: str) -> None:
    said = who_may_decide(by, "U0ASKER01", ("U0ASKER01", "U0OTHER01"), plain=True)  # type: ignore[arg-type]
    assert not MARKUP.search(said), said
