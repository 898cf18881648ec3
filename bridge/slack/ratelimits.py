"""Slack refusing a call for coming too fast, and waiting as Slack asks before making it again.

Two refusals (reference/slack/limits.md): HTTP 429 `ratelimited` with Retry-After in whole seconds (the clients
built in clients.py wait it out three times first), and `rate_limited` in an HTTP 200 body ("posted too many
messages", no Retry-After). Slack did not process the call either way, so making it again is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from slack_sdk.errors import SlackApiError

from bridge.store.leases import check_lease

log = logging.getLogger(__name__)
T = TypeVar("T")

RATE_LIMITS = frozenset({"ratelimited", "rate_limited"})
RATE_LIMIT_WAITS = 5  # more tries of a rate-limited call, each after its wait
LONGEST_WAIT = 60.0


@dataclass
class TurnClock:
    """The running turn's deadline (TURN_DEADLINE_SECONDS), which Slack's rate limits do not count against: the
    agents answered, and a turn ended for Slack's wait was said to be Letta's fault, its next agents never asked."""

    deadline: asyncio.Timeout | None = None


TURN_CLOCK: ContextVar[TurnClock | None] = ContextVar("turn_clock", default=None)


def not_counted(seconds: float) -> None:
    """The running turn's deadline moved on by a wait Slack asked for (if it is on: a card's wait turns it off)."""
    clock = TURN_CLOCK.get()
    deadline = clock.deadline if clock is not None else None
    if clock is None or deadline is None or deadline.expired() or (when := deadline.when()) is None:
        return
    try:
        deadline.reschedule(when + seconds)
    except RuntimeError:  # its block has ended (the turn's clock is cleared then): nothing left to move on
        clock.deadline = None


def _error(exc: SlackApiError) -> str:
    data = exc.response.data if exc.response is not None else None
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def rate_limited(exc: BaseException) -> bool:
    """Slack refused the call for coming too fast (HTTP 429, or `rate_limited` in the body): it did not process it."""
    if not isinstance(exc, SlackApiError):
        return False
    return (exc.response is not None and exc.response.status_code == 429) or _error(exc) in RATE_LIMITS


def retry_after(exc: SlackApiError, waits: int) -> float:
    """The seconds Slack asked a rate-limited call to wait (Retry-After), else 1, 2, 4... by the waits so far."""
    headers = exc.response.headers if exc.response is not None else {}
    given = next((str(v) for k, v in (headers or {}).items() if k.lower() == "retry-after"), "")
    try:
        return min(max(float(given), 0.0), LONGEST_WAIT)
    except ValueError:
        return min(2.0 ** (waits - 1), LONGEST_WAIT)


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """A call made again while Slack rate-limits it, after the wait it asks for, up to RATE_LIMIT_WAITS more times;
    each time only while the binding's lease may still be held (a process frozen in the wait was taken over)."""
    waits = 0
    while True:
        try:
            return await call()
        except SlackApiError as exc:
            if not rate_limited(exc) or waits == RATE_LIMIT_WAITS:
                raise
            waits += 1
            wait = retry_after(exc, waits)
            log.info("slack rate-limited a call error=%s wait=%.0fs", _error(exc), wait)
            not_counted(wait)
            await asyncio.sleep(wait)
            check_lease()
