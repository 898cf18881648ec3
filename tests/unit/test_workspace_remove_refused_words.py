"""`workspaces remove` when the workspace's Letta answers but refuses the denial (here its own key: 401, as captured
in reference/letta/0.16.8/auth-wrong.json) says what Letta answered, never that it "did not answer": else the admin
looks for a server that is down while it is up and refusing the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.config import Settings
from bridge.store import open_store
from bridge.store.approvals import ApprovalStore, Asked
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspace_admin import remove_workspace
from tests.unit.test_installations import install
from tests.unit.test_stop_cancel import BOB, TURN

KEY = Fernet.generate_key().decode()


def test_removing_a_workspace_whose_letta_refuses_the_key_does_not_say_it_did_not_answer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    hits: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"detail": "Unauthorized"}, status=401)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", refuse)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        letta = f"http://127.0.0.1:{port}"
        settings = Settings(
            slack_client_id="1.2", slack_client_secret="s", database_url=url, bridge_encryption_key=SecretStr(KEY),
            slack_api_url="http://127.0.0.1:9/api/", letta_base_url=letta, letta_connect_timeout=1.0,
        )
        try:
            store = open_store(url)
            await store.open()
            installs = BridgeInstallationStore(store, Cipher(KEY))
            await installs.async_save(install("T1"))
            await installs.set_letta("T1", letta, "sk-rotated", "U1")  # its own server and key (/letta setup)
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None and await store.take_turn(turn_id)
            await ApprovalStore(store).ask([Asked(turn_id, BOB.id, "call-1", "T1", "C1", "1.000001", BOB.id,
                                                  "bob", None, "req-1", "shout", "{}", "U1")])
            await store.close()

            said = await remove_workspace(settings, "T1")
        finally:
            await runner.cleanup()
        assert hits, "the denial was never sent"
        assert said is not None and "removed" in said, said
        # Letta answered (401): saying it "did not answer" sends the admin after a server that is up.
        assert "did not answer" not in said, said
        assert "T1 were not denied" in said and "rejected the bridge's API key (HTTP 401)" in said, said
        assert "the key given to `/letta setup` for this workspace" in said, said
        assert "approve or deny them in letta" in said.lower(), said

    asyncio.run(main())
