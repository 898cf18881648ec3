"""Signed requests the listeners have no use for: a view without its type is refused in words, and Slack's
`app_rate_limited` notice is answered 200 and said in the log (any other answer counts against the app)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body
from tests.fakes.slack import FakeSlack

FORM = "application/x-www-form-urlencoded"


def test_a_view_submission_whose_view_has_no_type_is_refused_400_not_a_500_traceback(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    slack, letta, tmp = fresh
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp / "bridge.db")).start(tmp / "bridge.log")
    try:
        payload = {"type": "view_submission", "user": {"id": "U0123ABCD"}, "team": {"id": "T0123ABCD"},
                   "view": {"id": "V0123", "callback_id": "letta_anything", "state": {"values": {}}}}
        answer = bridge.post(action_body(payload), content_type=FORM)
        assert answer.status_code == 400, (answer.status_code, answer.text)
        assert "Traceback" not in bridge.logs()
    finally:
        bridge.stop()


def test_slacks_app_rate_limited_notice_is_answered_200_and_named_in_the_log(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    slack, letta, tmp = fresh
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp / "bridge.db")).start(tmp / "bridge.log")
    try:
        notice = {"token": "t", "type": "app_rate_limited", "team_id": "T0123ABCD",
                  "minute_rate_limited": int(time.time()) // 60 * 60, "api_app_id": "A0123ABCD"}
        answer = bridge.post(json.dumps(notice).encode())
        assert answer.status_code == 200, (answer.status_code, answer.text)
        deadline = time.monotonic() + 10
        while "dropping this app's event deliveries" not in bridge.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        logs = bridge.logs()
        assert "dropping this app's event deliveries team=T0123ABCD" in logs, logs[-2000:]
        assert "Unhandled request" not in logs
    finally:
        bridge.stop()
