"""A refused signature says which of its two causes it is: the log line is where an operator with a mistyped
SLACK_SIGNING_SECRET looks, while Slack only says the bridge did not answer its challenge."""

from __future__ import annotations

import time

from bridge.slack.gate import REPLAY_WINDOW, Gate
from tests.fakes.signing import event_body, mention_event, signed_headers

SECRET = "the-apps-signing-secret"


async def _never(signature: str, until: float) -> bool:
    return True


def test_a_signature_made_with_another_secret_names_the_setting() -> None:
    body = event_body(mention_event("<@U0BOTABCD> hi"))
    refusal = Gate(SECRET, _never).check(signed_headers("another-secret", body, "application/json"), body)
    assert refusal is not None and refusal.status == 401
    assert "SLACK_SIGNING_SECRET" in refusal.reason and "Signing Secret" in refusal.reason, refusal.reason


def test_a_stale_request_is_said_to_be_old_not_a_wrong_secret() -> None:
    body = event_body(mention_event("<@U0BOTABCD> hi"))
    old = int(time.time()) - REPLAY_WINDOW - 60
    refusal = Gate(SECRET, _never).check(signed_headers(SECRET, body, "application/json", timestamp=old), body)
    assert refusal is not None and refusal.status == 401
    assert "more than 5 minutes old" in refusal.reason and "clock" in refusal.reason, refusal.reason
    assert "SLACK_SIGNING_SECRET" not in refusal.reason


def test_a_view_submission_whose_view_lacks_its_type_is_refused_not_handed_to_bolt() -> None:
    """Bolt reads `view.type` of any view with a callback_id: a signed body without one was a 500 and a traceback."""
    import json
    from urllib.parse import urlencode

    def form(view: dict[str, object]) -> bytes:
        payload = {"type": "view_submission", "user": {"id": "U0123ABCD"}, "team": {"id": "T0123ABCD"}, "view": view}
        return urlencode({"payload": json.dumps(payload)}).encode()

    content = "application/x-www-form-urlencoded"
    gate = Gate(SECRET, _never)
    bad = form({"id": "V0123", "callback_id": "letta_anything", "state": {"values": {}}})
    refusal = gate.check(signed_headers(SECRET, bad, content), bad)
    assert refusal is not None and refusal.status == 400, refusal
    good = form({"id": "V0123", "type": "modal", "callback_id": "letta_anything", "state": {"values": {}}})
    assert gate.check(signed_headers(SECRET, good, content), good) is None
