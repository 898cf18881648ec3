"""`workspaces list` says when each workspace installed the app: after it installed again (an uninstall then a new
install, or a reinstall for more scopes) that is the new install's time, as the bridge itself goes by
(installed_since, the late-uninstall rule); a renewal of its tokens keeps the time (taken over from review FF)."""

from __future__ import annotations

from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.store import Store
from bridge.store.installations import BridgeInstallationStore
from tests.unit.test_installations import install, run


def test_a_workspace_installed_again_is_listed_with_its_new_install_time(database_url: str) -> None:
    """The listing's time follows an install after an uninstall and a reinstall for more scopes."""

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        await installs.async_save(install("T1", installed_at=1_700_000_000.0))
        await installs.async_delete_all(enterprise_id=None, team_id="T1")  # uninstalled
        await installs.async_save(install("T1", installed_at=1_750_000_000.0))  # installed again, months later
        found = await installs.installed("T1")
        assert found is not None and found.installed_at == 1_750_000_000.0, found
        assert await installs.installed_since(found) == 1_750_000_000.0
        await installs.async_save(install("T1", installed_at=1_760_000_000.0))  # installed again for a scope
        found = await installs.installed("T1")
        assert found is not None and found.installed_at == 1_760_000_000.0, found.installed_at
        assert await installs.installed_since(found) == 1_760_000_000.0

    run(database_url, body)


def test_a_token_renewal_keeps_the_install_time(database_url: str) -> None:
    """A renewal saves the installation copied as slack_sdk's token rotator copies it: the time does not move."""

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        await installs.async_save(install("T1", installed_at=1_750_000_000.0, bot_refresh_token="xoxe-1-a"))
        stored = await installs.async_find_installation(enterprise_id=None, team_id="T1")
        assert stored is not None
        renewed = Installation(**stored.to_dict_for_copying())  # as AsyncTokenRotator makes it
        renewed.bot_token, renewed.bot_refresh_token = "xoxb-renewed", "xoxe-1-b"
        await installs.async_save(renewed)
        found = await installs.installed("T1")
        assert found is not None and found.installed_at == 1_750_000_000.0, found.installed_at
        assert await installs.installed_since(found) == 1_750_000_000.0

    run(database_url, body)
