"""Bolt's AsyncApp, with the Slack client it makes for each request taking the bridge's proxy.

Bolt copies its client's settings into a new client per request, but slack_sdk reads a proxy of None as "ask the
environment" (HTTPS_PROXY, ignoring NO_PROXY and ALL_PROXY): a call made while answering a request (the first
request's auth.test, a listener's views.open) would leave by another route than the bridge's own calls.
"""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest


class BridgeApp(AsyncApp):
    def _init_context(self, req: AsyncBoltRequest) -> None:
        super()._init_context(req)
        client = req.context.client
        if client is not None:
            client.proxy = self.client.proxy  # the bridge's rule, bridge/proxies.py (None: direct)
