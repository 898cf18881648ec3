"""A modal opened with an interaction's trigger_id, which Slack honours for 3 seconds from the interaction (views.open
answers `expired_trigger_id` after, reference/slack/web-api/views.open.json). No call is made again past that: the
client's retry handlers ask `in_time` before a rate limit's Retry-After or a connection retry's pause, and a modal
that did not open is said in words, since the person can only press or type again for a fresh trigger."""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.failures import FAILURES, passing, slack_error

log = logging.getLogger(__name__)

TRIGGER_SECONDS = 3.0
WAY_HERE = 0.3  # of those, spent before the listener heard of the interaction (Slack's request on its way)
ANSWER_SECONDS = 5.0  # a views.open sent in time may be answered after the trigger's end: its answer is waited for

BUSY = "busy"  # not_opened's error for a failure that may pass: a rate limit, a timeout, Slack's trouble

# When the trigger of the modal being opened ends (time.monotonic); None while no modal is being opened.
TRIGGER_ENDS: ContextVar[float | None] = ContextVar("trigger_ends", default=None)


def in_time(wait: float) -> bool:
    """Whether a call made again after `wait` seconds still reaches Slack while the trigger lives; always, for a
    call that opens no modal."""
    ends = TRIGGER_ENDS.get()
    return ends is None or time.monotonic() + wait < ends


def not_opened(error: str, form: str, again: str) -> str:
    """What the person is told: `form` names the modal, `again` how to get a fresh trigger."""
    if error == "expired_trigger_id":
        return f"Slack did not open {form} in time: {again}."
    if error == BUSY:
        return f"Slack was too busy to open {form} just now: {again}."
    return f"Slack would not open {form} (it said `{error}`): {again}."


async def open_modal(
    client: AsyncWebClient, trigger_id: Any, view: dict[str, Any], arrived: float, form: str, again: str
) -> str | None:
    """views.open while the trigger of an interaction heard at `arrived` (time.monotonic) lives. None once open,
    else the words for the person (not_opened)."""
    ends = arrived + TRIGGER_SECONDS - WAY_HERE
    if time.monotonic() >= ends:
        log.warning("slack views.open not made: the trigger had expired form=%r", form)
        return not_opened("expired_trigger_id", form, again)
    token = TRIGGER_ENDS.set(ends)
    try:
        async with asyncio.timeout(ends - time.monotonic() + ANSWER_SECONDS):
            await client.views_open(trigger_id=trigger_id, view=view)
    except FAILURES as exc:
        error = slack_error(exc)
        log.warning("slack views.open failed form=%r error=%s", form, error)
        return not_opened(BUSY if passing(exc) else error, form, again)
    finally:
        TRIGGER_ENDS.reset(token)
    return None
