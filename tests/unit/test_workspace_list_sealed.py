"""`workspaces list` without BRIDGE_ENCRYPTION_KEY: a workspace's own Letta URL that holds a password is stored
sealed, so it is named as sealed with what would open it, and the listing still lists every workspace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.fernet import Fernet

from bridge.config import Settings
from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.workspace_admin import list_workspaces
from tests.unit.test_installations import install

KEY = Fernet.generate_key().decode()


def test_a_sealed_letta_url_is_listed_as_sealed_without_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    keyless = Settings(slack_client_id="1.2", slack_client_secret="s", database_url=url)

    async def main() -> None:
        store = open_store(url)
        await store.open()
        installs = BridgeInstallationStore(store, Cipher(KEY))
        await installs.async_save(install("T1"))
        await installs.async_save(install("T2"))
        await installs.set_letta("T1", "https://user:hunter2@letta.example.com", "sk-own", "U1")
        await installs.set_letta("T2", "https://letta.plain.example.com", "sk-two", "U1")
        await store.close()

        lines = await list_workspaces(keyless)
        [t1] = [line for line in lines if line.startswith("T1")]
        [t2] = [line for line in lines if line.startswith("T2")]
        assert "sealed: set BRIDGE_ENCRYPTION_KEY to read it" in t1 and "hunter2" not in t1, t1
        assert "letta.plain.example.com" in t2, t2

    asyncio.run(main())
