"""Which failed token renewals (oauth.v2.access with a refresh token) a request is delivered again for: Slack out of
reach, its rate limit or its trouble, not a refresh token or app credentials it refused. Each refusal is the
SlackApiError slack_sdk makes of the answer, over real HTTP. (End to end: tests/e2e/test_workspaces.py.)"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.metrics import Metrics
from bridge.slack.bolt_app import TryLater
from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspace_authorize import WorkspaceAuthorize, renewal_may_pass
from bridge.workspaces import Workspaces
from tests.loopback import serving

JSON = "application/json; charset=utf-8"


async def refusal(status: int, content_type: str, body: str) -> SlackApiError:
    """The error slack_sdk raises for this answer to oauth.v2.access."""

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type.split(";")[0])

    app = web.Application()
    app.router.add_post("/api/oauth.v2.access", answer)
    async with serving(app) as port:
        client = AsyncWebClient(base_url=f"http://127.0.0.1:{port}/api/")
        with pytest.raises(SlackApiError) as caught:
            await client.oauth_v2_access(client_id="c", client_secret="s", grant_type="refresh_token",
                                         refresh_token="xoxe-1-x")
        return caught.value


@pytest.mark.parametrize(
    ("status", "content_type", "body", "passes"),
    [
        (429, JSON, '{"ok":false,"error":"ratelimited"}', True),
        (200, JSON, '{"ok":false,"error":"service_unavailable"}', True),
        (200, JSON, '{"ok":false,"error":"internal_error"}', True),
        (502, "text/html", "<html><body>502 Bad Gateway</body></html>", True),  # a load balancer's page
        (503, JSON, '{"ok":false,"error":"fatal_error"}', True),
        (200, JSON, '{"ok":false,"error":"invalid_refresh_token"}', False),
        (200, JSON, '{"ok":false,"error":"bad_client_secret"}', False),
        (200, JSON, '{"ok":false,"error":"invalid_client_id"}', False),
    ],
)
def test_only_slacks_own_trouble_is_tried_again(status: int, content_type: str, body: str, passes: bool) -> None:
    assert renewal_may_pass(asyncio.run(refusal(status, content_type, body))) is passes


def test_a_renewal_that_cannot_reach_slack_is_tried_later(tmp_path: Path) -> None:
    """A connection refused was answered 500 before too, but as a crash with its traceback."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            installs = BridgeInstallationStore(store, Cipher(Fernet.generate_key().decode()))
            settings = Settings(slack_client_id="1.2", slack_client_secret="s",
                                slack_api_url=f"http://127.0.0.1:{port}/api/")

            async def make(_settings: Settings) -> Any:
                raise AssertionError("no Letta server is asked")

            workspaces = Workspaces(settings, store, installs, Metrics(), make)
            expiring = Installation(app_id="A1", team_id="T1", bot_token="xoxe.xoxb-1-old", bot_id="B1",
                                    bot_user_id="U0BOT", bot_refresh_token="xoxe-1-r", bot_token_expires_in=60,
                                    user_id="U1")
            await installs.async_save(expiring)
            authorize = WorkspaceAuthorize(workspaces, logger=logging.getLogger(__name__), installation_store=installs,
                                           client_id="1.2", client_secret="s")
            with pytest.raises(TryLater, match="could not be renewed workspace=T1 error=ClientConnectorError"):
                await authorize._rotate_and_save_tokens_if_necessary(expiring)
        finally:
            await store.close()

    asyncio.run(main())


def test_token_renewals_are_counted_in_the_apps_metrics(tmp_path: Path) -> None:
    """oauth.v2.access (a bot token renewed) is the call an OAuth operator alerts on: it counts into the app's
    registry, not into the one nobody scrapes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(slack_client_id="1.2", slack_client_secret="s", slack_signing_secret="sign",
                        bridge_encryption_key=Fernet.generate_key(),
                        slack_api_url=f"http://127.0.0.1:{port}/api/", database_url=f"sqlite:///{tmp_path / 'b.db'}")

    async def main() -> None:
        from bridge.app import Bridge

        bridge = Bridge(settings)
        assert bridge.workspaces is not None
        await bridge.store.open()
        try:
            expiring = Installation(app_id="A1", team_id="T1", bot_token="xoxe.xoxb-1-old", bot_id="B1",
                                    bot_user_id="U0BOT", bot_refresh_token="xoxe-1-r", bot_token_expires_in=60,
                                    user_id="U1")
            await bridge.workspaces.installs.async_save(expiring)
            authorize = bridge.app._async_authorize
            assert isinstance(authorize, WorkspaceAuthorize)
            with pytest.raises(TryLater):
                await authorize._rotate_and_save_tokens_if_necessary(expiring)
        finally:
            await bridge.store.close()
        page = bridge.metrics.expose().decode()
        assert 'bridge_slack_errors_total{error="ClientConnectorError",method="oauth.v2.access"} 1.0' in page

    asyncio.run(main())
