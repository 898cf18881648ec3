"""Bolt's authorize in OAuth mode keeps each bot token's auth.test answer (bridge/workspace_authorize.py): one
Slack round trip per token, not one per request; and only the workspace's current token's, so that a bridge
renewing tokens for months does not keep every token it ever had. The fake Slack issues and renews the tokens
(oauth.v2.access) and answers auth.test for them; the installation store is a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.metrics import Metrics
from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspace_authorize import WorkspaceAuthorize
from bridge.workspaces import Workspaces
from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET, FakeSlack, Grant

ROUNDS = 4


async def installed(slack: FakeSlack, client: AsyncWebClient, installs: BridgeInstallationStore, grant: Grant) -> None:
    """The workspace installs the app: its code exchanged for tokens, saved as the install flow saves them."""
    body = await client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=slack.code_for(grant))
    await installs.async_save(Installation(
        app_id=body["app_id"], team_id=grant.team_id, bot_token=body["access_token"], bot_id=grant.bot_id,
        bot_user_id=grant.bot_user_id, bot_refresh_token=body.get("refresh_token"),
        bot_token_expires_in=body.get("expires_in"), user_id="U1",
    ))


def test_the_authorize_cache_keeps_one_token_per_workspace_and_asks_slack_once_per_token(tmp_path: Path) -> None:
    """Before, Bolt's cache (keyed by token) gained an entry at every renewal and never lost one: with token
    rotation on, two a day per workspace for as long as the process ran."""

    async def main(slack: FakeSlack) -> tuple[list[Any], int]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        client = AsyncWebClient(base_url=slack.api_url)
        try:
            installs = BridgeInstallationStore(store, Cipher(Fernet.generate_key().decode()))
            settings = Settings(slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET,
                                slack_api_url=slack.api_url)

            async def make(_settings: Settings) -> Any:
                raise AssertionError("no Letta server is asked")

            workspaces = Workspaces(settings, store, installs, Metrics(), make)
            # Tokens that expire within SLACK_TOKEN_ROTATION_MINUTES: each request renews them first.
            await installed(slack, client, installs, Grant("T1", "Acme", rotation=True, expires_in=60))
            await installed(slack, client, installs, Grant("T2", "Beta", bot_id="B0BETA001", rotation=True,
                                                           expires_in=60))
            await installed(slack, client, installs, Grant("T3", "Gamma", bot_id="B0GAMMA01"))  # no rotation
            authorize = WorkspaceAuthorize(workspaces, logger=logging.getLogger(__name__), installation_store=installs,
                                           client_id=CLIENT_ID, client_secret=CLIENT_SECRET, client=client)
            context = AsyncBoltContext(client=client, is_enterprise_install=False)
            results = []
            for _ in range(ROUNDS):
                for team in ("T1", "T2", "T3"):
                    results.append(await authorize(context=context, enterprise_id=None, team_id=team, user_id="U1"))
            return results, len(authorize.authorize_result_cache)
        finally:
            await store.close()

    with FakeSlack() as slack:
        results, cached = asyncio.run(main(slack))
        renewals = len([c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"])
        checks = len(slack.calls_to("auth.test"))
    assert all(r is not None for r in results)
    assert [r.team_id for r in results[:3]] == ["T1", "T2", "T3"]
    assert renewals == 2 * ROUNDS  # T1's and T2's tokens renewed at each request
    assert checks == 2 * ROUNDS + 1  # one auth.test per token: T3's asked once for its four requests
    assert cached == 3  # the current token of each workspace, not each token each workspace had
