"""`workspaces remove E…` of an org-wide install serving two workspaces, each with a tool call waiting, while Letta
is down: one sentence names both workspaces (so the admin knows whose calls to decide in Letta), and the server that
did not answer for the first is not asked again for the second (the command waits on it once)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
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
ORG = "E0ORG0001"


def test_removing_an_org_whose_letta_is_down_names_each_workspace_left_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    settings = Settings(
        slack_client_id="1.2", slack_client_secret="s", database_url=url, bridge_encryption_key=SecretStr(KEY),
        slack_api_url="http://127.0.0.1:9/api/", letta_base_url="http://127.0.0.1:9", letta_connect_timeout=1.0,
    )

    async def main() -> None:
        store = open_store(url)
        await store.open()
        installs = BridgeInstallationStore(store, Cipher(KEY))
        await installs.async_save(install(None, ORG, org_wide=True))
        for n, team in enumerate(("T1", "T2")):
            await installs.seen(team, ORG, f"team {team}")
            turn_id = await store.accept_turn(dataclasses.replace(TURN, team_id=team, event_id=f"Ev{n}"), f"otid-{n}")
            assert turn_id is not None and await store.take_turn(turn_id)
            await ApprovalStore(store).ask([Asked(turn_id, BOB.id, f"call-{n}", team, "C1", "1.000001", BOB.id,
                                                  "bob", None, f"req-{n}", "shout", "{}", "U1")])
        await store.close()

        said = await remove_workspace(settings, ORG)
        assert said is not None and "removed" in said and "2 unfinished turns ended" in said, said
        assert said.count("did not answer") == 1 and "left waiting in T1, T2 were not denied" in said, said
        assert said.count("approve or deny them in Letta") == 1, said
        asked = [r for r in caplog.records if r.name == "bridge.letta.approving" and "not withdrawn" in r.message]
        assert len(asked) == 1, "the server that did not answer for T1 was asked again for T2"

    asyncio.run(main())
