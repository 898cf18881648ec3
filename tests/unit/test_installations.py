"""The installation and state stores over the bridge's own database, on both backends: tokens encrypted at rest,
Enterprise Grid installs found for each workspace of the org, states used once, workspaces' Letta settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.config import Settings
from bridge.domain import Turn
from bridge.logs import Redactor
from bridge.store import Store, open_store
from bridge.store.crypto import Cipher, CipherError
from bridge.store.installations import BridgeInstallationStore
from bridge.store.oauth_state import BridgeStateStore
from bridge.store.sql import Sql
from tests.unit.old_databases import old_database

KEY = Fernet.generate_key().decode()


def run(url: str, body: Callable[[Store, BridgeInstallationStore], Awaitable[None]], key: str = KEY) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await body(store, BridgeInstallationStore(store, Cipher(key)))
        finally:
            await store.close()

    asyncio.run(main())


def install(team: str | None, enterprise: str | None = None, org_wide: bool = False, **extra: object) -> Installation:
    return Installation(
        app_id="A0123ABCD",
        enterprise_id=enterprise,
        enterprise_name="Acme Org" if enterprise else None,
        team_id=team,
        team_name=f"team {team}" if team else None,
        bot_token=f"xoxb-secret-{team or enterprise}",
        bot_id="B0123ABCD",
        bot_user_id="U0BOTABCD",
        bot_scopes="chat:write,commands",
        user_id="U0INSTALL",
        is_enterprise_install=org_wide,
        **extra,  # type: ignore[arg-type]
    )


def test_an_installation_is_saved_encrypted_found_and_deleted(database_url: str) -> None:
    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        await installs.async_save(install("T1", bot_refresh_token="xoxe-1-refresh", bot_token_expires_in=43200))
        rows = await Sql(store).fetch("SELECT * FROM slack_installations")
        assert len(rows) == 1 and rows[0]["team_id"] == "T1" and rows[0]["team_name"] == "team T1"
        assert "xoxb-secret" not in str(rows) and "xoxe-1-refresh" not in str(rows)
        found = await installs.async_find_installation(enterprise_id=None, team_id="T1")
        assert found is not None and found.bot_token == "xoxb-secret-T1" and found.bot_refresh_token == "xoxe-1-refresh"
        assert found.bot_token_expires_at is not None and found.bot_token_expires_at > time.time() + 40000
        bot = await installs.async_find_bot(enterprise_id=None, team_id="T1")
        assert bot is not None and bot.bot_token == "xoxb-secret-T1"
        assert await installs.async_find_installation(enterprise_id=None, team_id="T2") is None
        [listed] = await installs.installations()
        assert listed.key == "T1" and not listed.is_enterprise_install and listed.expires_at is not None
        assert (await installs.installation_for("T1")) is not None
        await installs.async_delete_all(enterprise_id=None, team_id="T1")
        assert await installs.async_find_installation(enterprise_id=None, team_id="T1") is None
        assert await installs.installations() == []

    run(database_url, body)


def test_an_org_wide_install_serves_every_workspace_of_its_org(database_url: str) -> None:
    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        await installs.async_save(install(None, "E1", org_wide=True))
        await installs.async_save(install("T9", None))
        for team in ("T1", "T2"):  # what Bolt asks for an event from a workspace of the org
            found = await installs.async_find_installation(enterprise_id="E1", team_id=team, is_enterprise_install=True)
            assert found is not None and found.bot_token == "xoxb-secret-E1"
            found = await installs.async_find_installation(enterprise_id="E1", team_id=team)
            assert found is not None and found.bot_token == "xoxb-secret-E1"
        await installs.seen("T1", "E1")
        await installs.seen("T2", "E1")
        found = await installs.installation_for("T2")  # a turn knows only its workspace
        assert found is not None and found.bot_token == "xoxb-secret-E1"
        org = await installs.installed("T1")
        assert org is not None and org.is_enterprise_install and org.key == "E1" and org.name == "Acme Org"
        assert await installs.workspaces_of(org) == ["T1", "T2"]
        assert await installs.workspace_org("T2") == "E1"
        await installs.async_delete_all(enterprise_id="E1", team_id="T2")  # app_uninstalled from the org
        assert await installs.installation_for("T1") is None
        assert [i.key for i in await installs.installations()] == ["T9"]

    run(database_url, body)


def test_a_state_is_used_once_and_a_forged_or_expired_one_is_refused(database_url: str) -> None:
    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        states = BridgeStateStore(installs, secret=None)
        state = await states.async_issue()
        assert await states.async_consume(state) is True
        assert await states.async_consume(state) is False  # replayed
        nonce = state.split(".")[0]
        assert await states.async_consume(nonce + ".0000") is False  # forged signature
        assert await states.async_consume("") is False
        other = BridgeStateStore(installs, secret=None)  # another process: the same generated secret
        second = await other.async_issue()
        assert await states.async_consume(second) is True
        stale = BridgeStateStore(installs, secret="given", expiration_seconds=-1)
        assert await stale.async_consume(await stale.async_issue()) is False
        rows = await Sql(store).fetch("SELECT value FROM bridge_secrets")
        assert len(rows) == 1 and rows[0]["value"].startswith("gAAAA")  # Fernet, not the secret itself

    run(database_url, body)


def test_a_workspace_letta_key_is_encrypted_and_removal_ends_its_turns(database_url: str) -> None:
    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        assert await installs.letta("T1") is None
        await installs.set_letta("T1", "http://letta.example:8283", "sk-letta-secret", "U0ADMIN")
        saved = await installs.letta("T1")
        assert saved is not None and saved.api_key == "sk-letta-secret" and saved.set_by == "U0ADMIN"
        assert "sk-letta-secret" not in str(await Sql(store).fetch("SELECT * FROM slack_workspaces"))
        await installs.set_letta("T1", None, None, "U0ADMIN")  # back to the environment's default
        assert await installs.letta("T1") is None

        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T2", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert await installs.end_unfinished_turns("T1") == [a]
        assert [p.turn_id for p in await store.unfinished_turns()] == [b]
        await installs.mark_removed(["T1"], now=1000.0)
        assert await installs.due_for_purge(now=1000.0 + 29 * 86400) == []
        assert await installs.due_for_purge(now=1000.0 + 31 * 86400) == ["T1"]
        await installs.async_save(install("T1"))  # reinstalled: nothing is purged
        assert await installs.due_for_purge(now=1000.0 + 31 * 86400) == []
        # Purged: its own Letta server and encrypted key go with its bindings (revM: they were kept for good).
        await installs.set_letta("T2", "http://letta.example:8283", "sk-t2-secret", "U0ADMIN")
        await installs.mark_removed(["T2"], now=1000.0)
        assert await installs.due_for_purge(now=1000.0 + 31 * 86400) == ["T2"]
        await installs.purged("T2")
        assert await installs.letta("T2") is None
        assert await installs.due_for_purge(now=1000.0 + 31 * 86400) == []

    run(database_url, body)


def test_a_workspace_letta_url_with_a_password_is_stored_encrypted_and_masked_in_logs(
    database_url: str,
) -> None:
    """A proxy's sign-in in the URL given to /letta setup (`http://user:pass@host`) was stored in the clear beside
    the encrypted key, and never masked in the logs."""

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        url = "http://proxyuser:pr0xy%40s3cret@letta.example:8283"
        await installs.set_letta("T1", url, "sk-letta-secret", "U0ADMIN")
        assert "s3cret" not in str(await Sql(store).fetch("SELECT * FROM slack_workspaces"))
        saved = await installs.letta("T1")
        assert saved is not None and saved.base_url == url and saved.api_key == "sk-letta-secret"
        await installs.set_letta("T2", "http://letta.example:8283", None, "U0ADMIN")
        plain = await installs.letta("T2")
        assert plain is not None and plain.base_url == "http://letta.example:8283"

    run(database_url, body)
    assert "s3cret" not in Redactor([]).redact("asked with pr0xy@s3cret, written pr0xy%40s3cret")


async def plain_letta_url(url: str, team: str, letta_url: str) -> None:
    """A workspace's Letta URL as a bridge from before schema v17 left it: /letta setup wrote it as given."""
    store = open_store(url, migrate=False)
    await store.open()
    try:
        await Sql(store).execute(
            "INSERT INTO slack_workspaces (team_id, letta_base_url, letta_set_by, letta_set_at) VALUES ($1,$2,'U1',1.0)"
            " ON CONFLICT (team_id) DO UPDATE SET letta_base_url=excluded.letta_base_url",
            team,
            letta_url,
        )
    finally:
        await store.close()


def test_an_older_bridges_plain_letta_url_with_a_password_is_sealed_and_masked(database_url: str) -> None:
    """revBG: a URL with a proxy password saved before the URL was stored encrypted (schema v17) stayed in the
    clear for good, and was never masked in the logs (only sealed rows were)."""
    plain = "https://proxyuser:upgr4ded-proxy-pass@letta.example.com"

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        read = await installs.letta("T1")  # read before the pass (`check` from the host): masked from then on
        assert read is not None and read.base_url == plain
        assert "upgr4ded" not in Redactor([]).redact(f"asked with {urlsplit(plain).password}")
        assert await installs.seal_plain_urls() == 1  # as serve's start does
        [row] = await Sql(store).fetch("SELECT letta_base_url FROM slack_workspaces WHERE team_id='T1'")
        assert "upgr4ded" not in str(row["letta_base_url"])
        own = await installs.letta("T1")
        assert own is not None and own.base_url == plain
        assert await installs.seal_plain_urls() == 0  # once

    async def upgraded() -> None:
        await old_database(database_url, 16)
        await plain_letta_url(database_url, "T1", plain)

    asyncio.run(upgraded())
    run(database_url, body)


def test_serve_seals_a_plain_letta_url_with_a_password_when_it_starts(tmp_path: Path) -> None:
    """The pass above runs at serve's start in OAuth mode, before any turn reads the URL; the password is masked
    in the logs from then on."""
    plain = "https://proxyuser:st4rted-proxy-pass@letta.example.com"
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    settings = Settings(
        slack_client_id="1.2",
        slack_client_secret="s",
        slack_signing_secret="sign",
        bridge_encryption_key=KEY,
        letta_base_url="http://127.0.0.1:9",
        database_url=url,
    )

    async def main() -> str:
        from bridge.app import Bridge

        fresh = open_store(url)  # the latest schema: the row is the older bridge's, the tables this one's
        await fresh.open()
        await fresh.close()
        await plain_letta_url(url, "T1", plain)
        bridge = Bridge(settings)
        await bridge.start()
        try:
            [row] = await Sql(bridge.store).fetch("SELECT letta_base_url FROM slack_workspaces WHERE team_id='T1'")
            return str(row["letta_base_url"])
        finally:
            await bridge.stop()

    assert "st4rted" not in asyncio.run(main())
    assert "st4rted" not in Redactor([]).redact(f"asked with {urlsplit(plain).password}")


def test_a_wrong_or_changed_key_is_said_in_plain_words(tmp_path: object) -> None:
    with pytest.raises(CipherError, match="not a Fernet key"):
        Cipher("not-a-key")
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = Cipher(old).encrypt("xoxb-1")
    with pytest.raises(CipherError, match="does not decrypt"):
        Cipher(new).decrypt(secret)
    assert Cipher(f"{new},{old}").decrypt(secret) == "xoxb-1"  # rotation: the new key first, the old one kept


def test_a_state_that_is_not_ascii_is_refused_not_a_crash(database_url: str) -> None:
    """Before, `?state=x.é` on /slack/oauth_redirect raised TypeError in hmac.compare_digest (str with non-ASCII
    characters): anyone could make the callback answer 500 with a traceback in the log."""

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        states = BridgeStateStore(installs, secret="given")
        for forged in ("x.é", "é.0000", "\udcff.00", "x.\x00"):
            assert await states.async_consume(forged) is False, forged

    run(database_url, body)


def test_removing_an_org_wide_install_leaves_a_workspace_served_by_its_own_install(database_url: str) -> None:
    """Grid: T5 has its own workspace install besides the org's org-wide one (installed() prefers T5's own). When the
    org-wide install is removed (app_uninstalled / tokens_revoked for the org, or `workspaces remove E1`), every
    workspace of the org seen so far is taken as removed, T5 too: its unfinished turns are ended `uninstalled` and
    its bindings are scheduled for deletion, though T5's own installation still serves it."""

    async def body(store: Store, installs: BridgeInstallationStore) -> None:
        await installs.async_save(install(None, "E1", org_wide=True))
        await installs.async_save(install("T5", "E1"))  # T5's own install, in the org
        await installs.seen("T1", "E1")
        org = await installs.installed("", "E1")
        assert org is not None and org.is_enterprise_install
        own = await installs.installed("T5")
        assert own is not None and own.team_id == "T5"  # T5 is served by its own install
        t5 = await store.accept_turn(Turn("T5", "C5", "1.000001", "1.000001", "U1", "hi", "Ev5"), "o5")
        assert t5
        # What `removed` (listeners/workspaces.py) and `workspaces remove` do with the org's install:
        teams = await installs.workspaces_of(org)
        await installs.async_delete_all(enterprise_id="E1", team_id=None)
        ended = [turn for team in teams for turn in await installs.end_unfinished_turns(team)]
        await installs.mark_removed(teams)
        assert await installs.installed("T5") is not None  # still installed
        assert t5 not in ended, "T5's turn was ended though T5 is still installed"
        assert "T5" not in await installs.due_for_purge(now=time.time() + 31 * 86400), "T5's bindings would be purged"

    run(database_url, body)
