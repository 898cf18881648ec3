"""A listener's database failure is said in one log line (slack/bolt_app.ListenerErrors). The bridge tries the
event again itself (the events inbox, or Slack's retry of a 500), so the line must not tell the reader to."""

from __future__ import annotations

import asyncio
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
    request = AsyncBoltRequest(body="{}", headers={}, mode="socket_mode")
    asyncio.run(handler.handle(sqlite3.OperationalError("database is locked"), request, None))
    assert "answered 500, to be handled again: the database is busy (database is locked)" in caplog.text
    assert "a sqlite3 shell left in a transaction" in caplog.text
    assert "try again" not in caplog.text
