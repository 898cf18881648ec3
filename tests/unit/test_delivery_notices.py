"""Slack's `app_rate_limited` notice is said in the log in words an admin can act on; anything else is not it."""

from __future__ import annotations

import json

from bridge.slack.delivery_notices import rate_limited_words

JSON = {"content-type": "application/json"}


def _body(**fields: object) -> bytes:
    return json.dumps({"token": "t", "type": "app_rate_limited", "api_app_id": "A0123ABCD", **fields}).encode()


def test_the_notice_names_the_workspace_and_the_minute_and_says_mentions_go_unanswered() -> None:
    words = rate_limited_words(JSON, _body(team_id="T0123ABCD", minute_rate_limited=1518467820))
    assert words is not None
    assert "team=T0123ABCD" in words and "since=2018-02-12T20:37:00Z" in words
    assert "no answer" in words and "30,000" in words


def test_a_notice_with_odd_fields_is_still_said() -> None:
    for minute in ("soon", None, True, -5, 10**20):
        words = rate_limited_words(JSON, _body(team_id=None, minute_rate_limited=minute))
        assert words is not None and "team=unknown" in words and "since=unknown" in words, (minute, words)


def test_events_forms_and_other_types_are_not_the_notice() -> None:
    assert rate_limited_words(JSON, json.dumps({"type": "event_callback", "event": {}}).encode()) is None
    assert rate_limited_words(JSON, b"[1, 2]") is None
    assert rate_limited_words({"content-type": "application/x-www-form-urlencoded"}, b"payload=%7B%7D") is None
