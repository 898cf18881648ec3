"""Grid, the reverse of test_removing_an_org_wide_install_leaves_a_workspace_served_by_its_own_install.
T5 has its own workspace install beside its org's org-wide one. `workspaces remove T5` (or T5's app_uninstalled /
tokens_revoked, which run the same steps in listeners/workspaces.py) deletes T5's own install; the org-wide one
still serves T5 (installed() falls back to it). Before, T5 was taken as gone all the same: its unfinished turns
were ended `uninstalled` and its channel bindings scheduled for deletion, though the workspace was still installed
(found by review revDO)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from bridge.config import Settings
from bridge.domain import Turn
from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from bridge.store.sql import Sql
from bridge.workspace_admin import remove_workspace
from tests.unit.test_installations import install

KEY = Fernet.generate_key().decode()


def test_removing_a_workspace_s_own_install_leaves_it_served_by_its_org_s(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    settings = Settings(
        slack_client_id="1.2", slack_client_secret="s", database_url=url,
        bridge_encryption_key=SecretStr(KEY), slack_api_url="http://127.0.0.1:9/api/",
    )

    async def main() -> None:
        store = open_store(url)
        await store.open()
        installs = BridgeInstallationStore(store, Cipher(KEY))
        await installs.async_save(install(None, "E1", org_wide=True))
        await installs.async_save(install("T5", "E1"))  # T5's own install, in the org
        t5 = await store.accept_turn(Turn("T5", "C5", "1.000001", "1.000001", "U1", "hi", "Ev5"), "o5")
        assert t5
        await store.close()

        said = await remove_workspace(settings, "T5")
        assert said is not None and "removed" in said
        assert "org-wide install still serves it" in said, said

        store = open_store(url)
        await store.open()
        try:
            installs = BridgeInstallationStore(store, Cipher(KEY))
            serving = await installs.installed("T5")
            assert serving is not None and serving.is_enterprise_install  # the org's install still serves T5
            assert await installs.installation_for("T5") is not None
            [row] = await Sql(store).fetch("SELECT status FROM turns WHERE id=$1", t5)
            assert row["status"] != "uninstalled", "T5's turn was ended though T5 is still installed"
            assert "T5" not in await installs.due_for_purge(now=time.time() + 31 * 86400), (
                "T5's bindings would be deleted though the org-wide install still serves it"
            )
        finally:
            await store.close()

    asyncio.run(main())
