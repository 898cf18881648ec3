"""A listener's database failure is said in one log line (slack/bolt_app.ListenerErrors). The bridge tries an
event again itself (the events inbox, or Slack's retry of a 500), so the line must not tell the reader to; Slack
never delivers a button press or a slash command again, so for those the line says it was not recorded."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bridge.slack.bolt_app import ListenerErrors


def test_a_locked_database_in_a_listener_is_said_without_advice_to_try_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """secKP: the line ended "…; try again once it lets go", advice a command's user needs (bridge.cli), not the
    reader of a log line about what the bridge retries on its own."""
    caplog.set_level(logging.WARNING, "bridge.slack.bolt_app")
    handler = ListenerErrors(logging.getLogger("slack_bolt"))
    event = {"type": "event_callback", "event": {"type": "app_mention"}}
    request = AsyncBoltRequest(body=json.dumps(event), headers={}, mode="socket_mode")
    asyncio.run(handler.handle(sqlite3.OperationalError("database is locked"), request, None))
    assert "answered 500, to be handled again: the database is busy (database is locked)" in caplog.text
    assert "a sqlite3 shell left in a transaction" in caplog.text
    assert "try again" not in caplog.text


def test_a_locked_database_at_a_button_press_is_said_not_recorded_and_not_handled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """secKQ: a feedback press answered 500 on a locked database was logged "to be handled again", yet Slack never
    delivers an interaction again: the line says it was not recorded and that the person may press again."""
    caplog.set_level(logging.WARNING, "bridge.slack.bolt_app")
    handler = ListenerErrors(logging.getLogger("slack_bolt"))
    press = {"type": "block_actions", "actions": [{"action_id": "feedback"}]}
    request = AsyncBoltRequest(body=json.dumps(press), headers={}, mode="socket_mode")
    asyncio.run(handler.handle(sqlite3.OperationalError("database is locked"), request, None))
    assert "handled again" not in caplog.text
    assert ("slack request answered 500, not recorded (Slack does not deliver it again; the person may press or"
            " send it again): the database is busy (database is locked)") in caplog.text
