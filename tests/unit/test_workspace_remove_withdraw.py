"""`workspaces remove` denies on Letta the tool calls its workspace's turns left waiting, as an uninstall does; a
Letta that does not answer is said in one sentence and the workspace is removed all the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


def test_removing_a_workspace_whose_letta_is_down_says_so_and_removes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    settings = Settings(
        slack_client_id="1.2", slack_client_secret="s", database_url=url, bridge_encryption_key=SecretStr(KEY),
        slack_api_url="http://127.0.0.1:9/api/", letta_base_url="http://127.0.0.1:9", letta_connect_timeout=1.0,
    )

    async def main() -> None:
        store = open_store(url)
        await store.open()
        installs = BridgeInstallationStore(store, Cipher(KEY))
        await installs.async_save(install("T1"))
        turn_id = await store.accept_turn(TURN, "otid-1")
        assert turn_id is not None and await store.take_turn(turn_id)
        [row] = await ApprovalStore(store).ask([Asked(turn_id, BOB.id, "call-1", "T1", "C1", "1.000001", BOB.id,
                                                      "bob", None, "req-1", "shout", "{}", "U1")])
        await store.close()

        said = await remove_workspace(settings, "T1")
        assert said is not None and "removed" in said, said
        assert "did not answer" in said and "approve or deny them in Letta" in said, said
        assert "Traceback" not in said

        store = open_store(url)
        await store.open()
        try:
            assert await BridgeInstallationStore(store, Cipher(KEY)).installed("T1") is None
            settled = await ApprovalStore(store).get(row.id)
            assert settled is not None and settled.outcome == "stopped"  # its card can no longer be used
        finally:
            await store.close()

    asyncio.run(main())
