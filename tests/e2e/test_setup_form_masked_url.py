"""A workspace's own Letta URL holding a user and password is never sent back to Slack (docs/workspaces.md: "shown as
`https://***@host`"): the `/letta setup` form opened again shows it masked, a submit of it as shown keeps the saved
URL, and one edited around the mask is refused, nothing saved. Before, the form was sent with the password in the
clear to whichever admin opened it (found by review revDY)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bridge.store import open_store
from bridge.store.crypto import Cipher
from bridge.store.installations import BridgeInstallationStore
from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import BETA
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant

PW = "WSURLPASS-6666"


def saved_url(env: dict[str, str], team: str) -> str | None:
    async def read() -> str | None:
        store = open_store(env["DATABASE_URL"])
        await store.open()
        try:
            own = await BridgeInstallationStore(store, Cipher(env["BRIDGE_ENCRYPTION_KEY"])).letta(team)
            return own.base_url if own is not None else None
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_setup_form_shows_a_saved_url_masked_and_keeps_it_when_submitted_as_shown(tmp_path: Path) -> None:
    other = FakeLetta(version="0.16.8")
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            world.command("setup", "C0BETA001", BETA)
            secret_url = other.base_url.replace("http://", f"http://wsuser:{PW}@")
            saved = world.submit_setup(BETA, secret_url, "")
            assert saved.status_code == 200 and "update" in saved.text, saved.text
            opened_before = len(world.slack.calls_to("views.open"))
            world.command("setup", "C0BETA001", BETA)  # any admin of the workspace, later
            world.slack.wait_for(lambda: len(world.slack.calls_to("views.open")) > opened_before, 10)
            view = json.dumps(world.slack.calls_to("views.open")[-1].args, default=str)
            shown = other.base_url.replace("http://", "http://***@")
            assert PW not in view and shown in view, view

            edited = world.submit_setup(BETA, shown + "/other", "")
            assert "Type the server URL's user and password again" in edited.text, edited.text
            assert saved_url(world.env, BETA) == secret_url, "nothing saved"
            kept = world.submit_setup(BETA, shown, "")
            assert kept.status_code == 200 and "update" in kept.text, kept.text
            assert saved_url(world.env, BETA) == secret_url
    finally:
        other.stop()
