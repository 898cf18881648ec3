"""revAI: /letta setup's answer warns of channels left on the previous server's agents only when the URL changed,
not when the key did (Letta Cloud: one URL, each key its own account and agents)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, bind
from tests.fakes.slack import Grant


def test_setup_with_another_key_on_the_same_url_says_the_connected_channels_must_be_connected_again(
    tmp_path: Path,
) -> None:
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        bind(world, ACME, "C0ACME001", world.letta, ("alice",))  # on the bridge's default server and key
        # The admin moves the workspace to its own account on the same URL (as on Letta Cloud): a key of its own.
        saved = world.submit_setup(ACME, world.letta.base_url, "sk-acme-own-account")
        assert saved.status_code == 200 and '"update"' in saved.text, saved.text
        # The bridge itself treats URL+key as another server (clients.server_id): the channel's group is the
        # default account's, which the new key's account does not hold.
        assert "still connected to the previous server" in saved.text, saved.text
