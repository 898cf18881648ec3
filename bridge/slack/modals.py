"""A modal opened with an interaction's trigger_id, which Slack honours for 3 seconds from the interaction (views.open
answers `expired_trigger_id` after, reference/slack/web-api/views.open.json) and exchanges for one view (used again:
`exchanged_trigger_id`). No call is made again past the trigger's life: the client's retry handlers ask `in_time`
before a rate limit's Retry-After or a connection's retry, and a views.open whose outcome is unknown is never made
again (metered.NOT_REPEATED: it may have opened the modal and spent the trigger; one whose connection never opened
is).  A modal that did not open is said in words, since the person
can only press or type again for a fresh trigger; one Slack may have opened is said as unconfirmed, never as failed.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.failures import FAILURES, outcome_unknown, passing, slack_error, unsent

log = logging.getLogger(__name__)

TRIGGER_SECONDS = 3.0
WAY_HERE = 0.3  # of those, spent before the listener heard of the interaction (Slack's request on its way)

BUSY = "busy"  # not_opened's error for a refusal that may pass: a rate limit, which Slack did not process
UNREACHED = "unreached"  # not_opened's error when the connection to Slack never opened: nothing was sent
UNCONFIRMED = "unconfirmed"  # not_opened's error when Slack may have opened it: a timeout, a 5xx, a dropped answer
OPENED = "exchanged_trigger_id"  # Slack already opened a view with this trigger: the modal is showing

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
    if error == UNREACHED:
        return f"Slack could not be reached to open {form} just now: {again}."
    if error == UNCONFIRMED:
        return f"Slack did not confirm {form} opened: if it is not showing, {again}."
    return f"Slack would not open {form} (it said `{error}`): {again}."


async def open_modal(
    client: AsyncWebClient, trigger_id: Any, view: dict[str, Any], arrived: float, form: str, again: str
) -> str | None:
    """views.open while the trigger of an interaction heard at `arrived` (time.monotonic) lives. None once open
    (or opened by an earlier call with the trigger), else the words for the person (not_opened). A call sent in
    time is waited for as long as the client waits for any answer: Slack may take it in time and answer late."""
    ends = arrived + TRIGGER_SECONDS - WAY_HERE
    if time.monotonic() >= ends:
        log.warning("slack views.open not made: the trigger had expired form=%r", form)
        return not_opened("expired_trigger_id", form, again)
    token = TRIGGER_ENDS.set(ends)
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except FAILURES as exc:
        error = slack_error(exc)
        if error == OPENED:
            log.info("slack views.open: the trigger was already exchanged, the modal is open form=%r", form)
            return None
        log.warning("slack views.open failed form=%r error=%s", form, error)
        return not_opened(_said(exc, error), form, again)
    finally:
        TRIGGER_ENDS.reset(token)
    return None


def _said(exc: BaseException, error: str) -> str:
    """not_opened's error for a failure: unreached where nothing was sent, unconfirmed where Slack may have opened
    the modal, busy where it will not have but may next time, else Slack's own code."""
    if unsent(exc):
        return UNREACHED
    if outcome_unknown(exc):
        return UNCONFIRMED
    return BUSY if passing(exc) else error
