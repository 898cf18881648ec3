"""OAuth mode: a workspace's Slack client waits out a 429 and counts it in bridge_slack_rate_limited_total, as
the single-workspace client does (tests/e2e/test_operator_view.py); it used slack_sdk's own handler, which counted
nothing, so an operator of many workspaces could not see the bridge held back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.config import Settings
from bridge.metrics import Metrics
from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspaces import Workspaces
from tests.loopback import serving


def test_a_workspaces_rate_limited_post_is_waited_out_and_counted(tmp_path: Path) -> None:
    asked: list[str] = []

    async def post(_request: web.Request) -> web.Response:
        asked.append("chat.postMessage")
        if len(asked) == 1:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"ok": True, "channel": "C1", "ts": "1.000002"})

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", post)

    async def main() -> float:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            async with serving(app) as port:
                installs = BridgeInstallationStore(store, Cipher(Fernet.generate_key().decode()))
                settings = Settings(slack_client_id="1.2", slack_client_secret="s",
                                    slack_api_url=f"http://127.0.0.1:{port}/api/")

                async def make(_settings: Settings) -> Any:
                    raise AssertionError("no Letta server is asked")

                metrics = Metrics()
                workspaces = Workspaces(settings, store, installs, metrics, make)
                await installs.async_save(Installation(app_id="A1", team_id="T1", bot_token="xoxb-1-t", bot_id="B1",
                                                       bot_user_id="U0BOT", user_id="U1"))
                client = workspaces._slack("T1", retry=True)
                response = await client.chat_postMessage(channel="C1", text="hi")
                assert response["ts"] == "1.000002"
                value = metrics.registry.get_sample_value(
                    "bridge_slack_rate_limited_total", {"method": "chat.postMessage"}
                )
                return value or 0.0
        finally:
            await store.close()

    assert asyncio.run(main()) == 1.0
    assert asked == ["chat.postMessage", "chat.postMessage"]
