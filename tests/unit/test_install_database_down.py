"""revBW: the installer lands back on /slack/oauth_redirect, or opens /slack/install, while the database does not
answer. docs/workspaces.md: an install that does not finish says why on the page the installer lands on, ... the
database not answering (503). Both gave aiohttp's bare 500 and a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.store.oauth_state import BridgeStateStore
from bridge.workspace_install import WorkspaceInstall


class Unanswered(Exception):
    """What the database driver raises when it does not answer (a lost connection, a timeout)."""


async def answer(db: Path, request: AsyncBoltRequest | None, secret: str | None = "given") -> BoltResponse:
    """The flow's answer once the database stops answering: to the redirect back from Slack (with a state issued
    before), or with no request to the install page. With no `secret` (SLACK_STATE_SECRET unset) the state
    secret is read from the database too, in a store of its own that has not read it yet."""
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        installs = BridgeInstallationStore(store, Cipher(Fernet.generate_key().decode()))
        state = await BridgeStateStore(installs, secret).async_issue()
        states = BridgeStateStore(installs, secret)

        async def down(*args: object) -> Any:
            raise Unanswered("connection lost")

        installs.sql.execute = down  # type: ignore[method-assign]  # the database stops answering
        installs.sql.fetch = down  # type: ignore[method-assign]
        settings = AsyncOAuthSettings(
            client_id="111.222", client_secret="s3cr3t", scopes=["chat:write"], user_scopes=[],
            installation_store=installs, state_store=states,
        )
        flow = WorkspaceInstall(client=AsyncWebClient(base_url="http://127.0.0.1:9/api/"), settings=settings)
        if request is None:
            return await flow.handle_installation(AsyncBoltRequest(body="", query=""))
        request = AsyncBoltRequest(
            body="", query=f"code=1.2.abc&state={state}", headers={"cookie": [f"slack-app-oauth-state={state}"]}
        )
        return await flow.handle_callback(request)
    finally:
        await store.close()


@pytest.mark.parametrize("secret", ["given", None])  # revBY: None (its secret read from the database) was a 500
@pytest.mark.parametrize("landing", [True, False])
def test_the_install_pages_while_the_database_does_not_answer_are_the_503_page(
    tmp_path: Path, landing: bool, secret: str | None
) -> None:
    request = AsyncBoltRequest(body="") if landing else None
    response = asyncio.run(answer(tmp_path / "b.db", request, secret))
    assert response.status == 503, (response.status, response.body)
    assert "database did not answer" in response.body and "Start the install again" in response.body
