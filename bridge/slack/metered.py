"""The Slack Web API client with every call timed and every failure counted by Slack's error code; each rate
limit (a 429 the client waits out itself, or one it raises for post.py and the drafts to wait out, `rate_limited`
too) counted as that, not as a failure."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.metrics import UNMETERED, Metrics
from bridge.proxies import proxy_for
from bridge.slack.failures import unsent
from bridge.slack.modals import in_time
from bridge.slack.ratelimits import not_counted, rate_limited
from bridge.store.leases import check_lease

# A post whose connection dropped may have landed: slack_sdk's default handler would make it again at once and
# show it twice. post.py reads the thread back first instead. A views.open that may have opened its modal has spent
# the trigger: made again, it is refused (`exchanged_trigger_id`) and the open modal would read as a failure; one
# whose connection never opened (failures.unsent) reached nothing, so it is made again while the trigger lives.
NOT_REPEATED = frozenset({"chat.postMessage", "views.open"})
UNSENT_REPEATED = frozenset({"views.open"})


class WithinTrigger(AsyncRetryHandler):
    """A retry handler that makes no call again when it would be made past a modal's trigger (modals.in_time): the
    trigger would be dead by then, and the failure is better said at once."""

    def repeatable(self, request: HttpRequest, error: Exception | None) -> bool:
        return True

    def pause(self, state: RetryState, response: HttpResponse | None) -> float:
        """The longest the handler can wait before the call is made again: slack_sdk draws its backoff's jitter
        (up to 1 s) afresh for the real sleep, so a sample of it here could let through a call made too late."""
        calculator = self.interval_calculator
        if isinstance(calculator, BackoffRetryIntervalCalculator):
            return calculator.backoff_factor * 2.0**state.current_attempt + 1.0  # RandomJitter adds < 1 s
        return calculator.calculate_sleep_duration(state.current_attempt)

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not self.repeatable(request, error) or not in_time(self.pause(state, response)):
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


class RepeatSafeRetry(WithinTrigger, AsyncConnectionErrorRetryHandler):
    """slack_sdk's retry of a call whose connection failed, except for a call that is not safe to make twice once
    it may have reached Slack."""

    def repeatable(self, request: HttpRequest, error: Exception | None) -> bool:
        method = urlsplit(request.url).path.rsplit("/", 1)[-1]
        return method not in NOT_REPEATED or (method in UNSENT_REPEATED and unsent(error))


class MeteredSlackClient(AsyncWebClient):
    """Times every Slack Web API call (Bolt's own included) and counts failures by Slack's error code; its proxy
    is the bridge's rule for Slack's URL (bridge/proxies.py), not slack_sdk's, which ignores NO_PROXY; a post whose
    connection failed is not made again blindly (RepeatSafeRetry)."""

    metrics: Metrics = UNMETERED

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("retry_handlers") is None:
            self.retry_handlers = [RepeatSafeRetry()]  # in place of slack_sdk's default, which repeats any call
        if not kwargs.get("proxy"):
            self.proxy = proxy_for(self.base_url)

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        started = time.monotonic()
        error: str | None = None
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            if rate_limited(exc):  # held back, not failed: post.py and drafts wait it out and make the call again
                self.metrics.rate_limited(api_method)
                raise
            data = exc.response.data if exc.response is not None else None
            error = str(data.get("error", "unknown")) if isinstance(data, dict) else "unknown"
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.metrics.slack_call(api_method, time.monotonic() - started, error)


class CountedRateLimits(WithinTrigger, AsyncRateLimitErrorRetryHandler):
    """Waits out a 429 and makes the call again (Slack did not process it), counting each one: the call that then
    succeeds is no failure, and without the count nothing would show the bridge held back. A worker whose lease
    may have been lost during the wait makes no call again (check_lease, as before every other Slack step), nor
    does a views.open whose trigger would have expired by then (modals.py): the 429 is raised at once instead."""

    def __init__(self, client: MeteredSlackClient, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._client = client

    def pause(self, state: RetryState, response: HttpResponse | None) -> float:
        return _retry_after(response) + 1 if response is not None else 0.0  # slack_sdk adds < 1 s

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is not None:
            self._client.metrics.rate_limited(request.url.rsplit("/", 1)[-1].split("?", 1)[0])
            not_counted(_retry_after(response) + 1)  # slack_sdk adds < 1 s
        await super().prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)
        check_lease()  # the call is made again next: not by a worker frozen in the wait past its binding's lease


def _retry_after(response: HttpResponse) -> float:
    """The seconds a 429 asks to wait (1 when it does not say, or says it unreadably)."""
    asked = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
    try:
        return float(asked[0] if isinstance(asked, list) else asked or 1)
    except ValueError:
        return 1.0
