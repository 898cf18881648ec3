"""The Slack Web API client with every call timed and every failure counted by Slack's error code."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.metrics import UNMETERED, Metrics
from bridge.proxies import proxy_for


class MeteredSlackClient(AsyncWebClient):
    """Times every Slack Web API call (Bolt's own included) and counts failures by Slack's error code; its proxy
    is the bridge's rule for Slack's URL (bridge/proxies.py), not slack_sdk's, which ignores NO_PROXY."""

    metrics: Metrics = UNMETERED

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not kwargs.get("proxy"):
            self.proxy = proxy_for(self.base_url)

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        started = time.monotonic()
        error: str | None = None
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            data = exc.response.data if exc.response is not None else None
            error = str(data.get("error", "unknown")) if isinstance(data, dict) else "unknown"
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.metrics.slack_call(api_method, time.monotonic() - started, error)
