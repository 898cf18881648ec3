"""Many workspaces (schema v5): Slack installations, OAuth states and each workspace's own settings, in the
bridge's own database, through Bolt's async installation-store and state-store interfaces.

Every secret (the installation as Slack gave it, with its bot token and refresh token; a workspace's Letta key;
the generated state secret) is stored encrypted (`crypto.Cipher`); only what `workspaces list` and `check`
show is kept in the clear (ids, names, when). One implementation serves both backends: the queries are written
once with `$n` placeholders, which the SQLite side turns into `?n`.

An installation is keyed by (enterprise_id, team_id) with '' for "none": a workspace's install is ('' or its
org, the workspace); an Enterprise Grid org-wide install is (the org, ''), and serves every workspace of the org.
`slack_workspaces` records each workspace the bridge has served (its org, for Grid) and its Letta settings.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from logging import Logger
from typing import TYPE_CHECKING, Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.store.base import UNFINISHED, Store
from bridge.store.crypto import Cipher
from bridge.store.sql import Sql
from bridge.store.workspace_letta import WorkspaceLettaRows

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

_TABLES = """
    CREATE TABLE slack_installations (
        enterprise_id TEXT NOT NULL, team_id TEXT NOT NULL, is_enterprise_install INTEGER NOT NULL,
        team_name TEXT NOT NULL DEFAULT '', enterprise_name TEXT NOT NULL DEFAULT '',
        bot_user_id TEXT NOT NULL DEFAULT '', secret TEXT NOT NULL, expires_at {real},
        installed_at {real} NOT NULL, updated_at {real} NOT NULL,
        PRIMARY KEY (enterprise_id, team_id)
    );
    CREATE TABLE oauth_states (state TEXT PRIMARY KEY, expires_at {real} NOT NULL);
    CREATE TABLE slack_workspaces (
        team_id TEXT PRIMARY KEY, enterprise_id TEXT NOT NULL DEFAULT '', team_name TEXT NOT NULL DEFAULT '',
        letta_base_url TEXT, letta_api_key TEXT, letta_set_by TEXT, letta_set_at {real},
        removed_at {real}, purge_after {real}
    );
    CREATE TABLE bridge_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SQLITE_V5 = _TABLES.format(real="REAL")
POSTGRES_V5 = _TABLES.format(real="DOUBLE PRECISION")

STATE_SECONDS = 600


@dataclass(frozen=True)
class InstalledWorkspace:
    """An installation as `workspaces list` and `check` show it: no secret."""

    enterprise_id: str
    team_id: str
    is_enterprise_install: bool
    team_name: str
    enterprise_name: str
    bot_user_id: str
    installed_at: float
    expires_at: float | None

    @property
    def key(self) -> str:
        """The id a person types: the workspace, or the org for an org-wide install."""
        return self.team_id or self.enterprise_id

    @property
    def name(self) -> str:
        return self.team_name or self.enterprise_name or self.key


def _key(enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> tuple[str, str]:
    if org_wide:
        return enterprise_id or "", ""
    return enterprise_id or "", team_id or ""


class BridgeInstallationStore(WorkspaceLettaRows, AsyncInstallationStore):
    """Bolt's async installation store over the bridge's Store; bot installations only (the app asks for no user
    scopes), each stored whole and encrypted."""

    def __init__(self, store: Store, cipher: Cipher, purge_days: float | None = 30.0) -> None:
        self.sql = Sql(store)
        self.cipher = cipher
        self.purge_days = purge_days  # bindings of an uninstalled workspace go after this; None keeps them

    @property
    def logger(self) -> Logger:
        return log

    # ---------------------------------------------------------------- Bolt's interface

    async def async_save(self, installation: Installation) -> None:
        """Stored whole and encrypted. Its plain installed_at follows the installation's (a reinstall's new time,
        as installed_since reads it from the record; a renewal copies the old one), for `workspaces list`."""
        enterprise, team = _key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        data = installation.to_dict_for_copying()
        secret = self.cipher.encrypt(json.dumps(data, default=str))
        now = time.time()
        await self.sql.execute(
            "INSERT INTO slack_installations (enterprise_id, team_id, is_enterprise_install, team_name,"
            " enterprise_name, bot_user_id, secret, expires_at, installed_at, updated_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (enterprise_id, team_id) DO UPDATE SET"
            " is_enterprise_install=excluded.is_enterprise_install, team_name=excluded.team_name,"
            " enterprise_name=excluded.enterprise_name, bot_user_id=excluded.bot_user_id, secret=excluded.secret,"
            " expires_at=excluded.expires_at, installed_at=excluded.installed_at, updated_at=excluded.updated_at",
            enterprise,
            team,
            1 if installation.is_enterprise_install else 0,
            installation.team_name or "",
            installation.enterprise_name or "",
            installation.bot_user_id or "",
            secret,
            float(installation.bot_token_expires_at) if installation.bot_token_expires_at else None,
            float(installation.installed_at or now),
            now,
        )
        if team:
            await self.seen(team, enterprise, installation.team_name or "", reinstalled=True)
        else:  # an org-wide install: every workspace of the org it had served is back
            await self.sql.execute(
                "UPDATE slack_workspaces SET removed_at=NULL, purge_after=NULL WHERE enterprise_id=$1", enterprise
            )

    async def async_save_bot(self, bot: Bot) -> None:
        raise NotImplementedError("the bridge saves whole installations (async_save)")

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        keys = [_key(enterprise_id, team_id, is_enterprise_install)]
        if enterprise_id and not is_enterprise_install:
            keys.append((enterprise_id, ""))  # a workspace of an org whose install is org-wide
        for enterprise, team in keys:
            rows = await self.sql.fetch(
                "SELECT secret FROM slack_installations WHERE enterprise_id=$1 AND team_id=$2", enterprise, team
            )
            if rows:
                return Installation(**json.loads(self.cipher.decrypt(rows[0]["secret"])))
        return None

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = await self.async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return None if found is None or not found.bot_token else found.to_bot()

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:  # user tokens are never stored: only the whole (bot) installation is deleted
            await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Delete the installation serving this workspace (its own, else its org's org-wide one)."""
        found = await self.installed(team_id or "", enterprise_id or "")
        if found is not None:
            await self.sql.execute(
                "DELETE FROM slack_installations WHERE enterprise_id=$1 AND team_id=$2",
                found.enterprise_id,
                found.team_id,
            )

    # ---------------------------------------------------------------- the bridge's own questions

    async def installations(self) -> list[InstalledWorkspace]:
        rows = await self.sql.fetch(
            "SELECT enterprise_id, team_id, is_enterprise_install, team_name, enterprise_name, bot_user_id,"
            " installed_at, expires_at FROM slack_installations ORDER BY enterprise_id, team_id"
        )
        return [
            InstalledWorkspace(
                r["enterprise_id"],
                r["team_id"],
                bool(r["is_enterprise_install"]),
                r["team_name"],
                r["enterprise_name"],
                r["bot_user_id"],
                float(r["installed_at"]),
                None if r["expires_at"] is None else float(r["expires_at"]),
            )
            for r in rows
        ]

    async def installed(self, team_id: str, enterprise_id: str = "") -> InstalledWorkspace | None:
        """The installation that serves this workspace: its own, else its org's (the org recorded when the bridge
        first served it, or given)."""
        if not enterprise_id and team_id:
            rows = await self.sql.fetch("SELECT enterprise_id FROM slack_workspaces WHERE team_id=$1", team_id)
            enterprise_id = rows[0]["enterprise_id"] if rows else ""
        for install in await self.installations():
            if team_id and install.team_id == team_id:
                return install
        for install in await self.installations():
            if enterprise_id and install.enterprise_id == enterprise_id and not install.team_id:
                return install
        return None

    async def installed_since(self, found: InstalledWorkspace) -> float | None:
        """When this installation was last made through Slack's install (a renewal of its tokens keeps the time)."""
        full = await self.async_find_installation(
            enterprise_id=found.enterprise_id or None,
            team_id=found.team_id or None,
            is_enterprise_install=found.is_enterprise_install,
        )
        return None if full is None else float(full.installed_at)

    async def installation_for(self, team_id: str) -> Installation | None:
        """The full installation (with its tokens) serving this workspace, for work outside a Slack request."""
        found = await self.installed(team_id)
        if found is None:
            return None
        return await self.async_find_installation(
            enterprise_id=found.enterprise_id or None,
            team_id=found.team_id or None,
            is_enterprise_install=found.is_enterprise_install,
        )

    async def seen(self, team_id: str, enterprise_id: str, team_name: str = "", reinstalled: bool = False) -> None:
        """Record a workspace the bridge serves, with its org (Enterprise Grid); a reinstall cancels a removal."""
        if reinstalled:
            await self.sql.execute(
                "INSERT INTO slack_workspaces (team_id, enterprise_id, team_name) VALUES ($1,$2,$3)"
                " ON CONFLICT (team_id) DO UPDATE SET enterprise_id=excluded.enterprise_id,"
                " team_name=excluded.team_name, removed_at=NULL, purge_after=NULL",
                team_id,
                enterprise_id,
                team_name,
            )
            return
        await self.sql.execute(
            "INSERT INTO slack_workspaces (team_id, enterprise_id, team_name) VALUES ($1,$2,$3)"
            " ON CONFLICT (team_id) DO UPDATE SET enterprise_id=excluded.enterprise_id,"
            " removed_at=NULL, purge_after=NULL",
            team_id,
            enterprise_id,
            team_name,
        )

    async def workspace_org(self, team_id: str) -> str | None:
        rows = await self.sql.fetch("SELECT enterprise_id FROM slack_workspaces WHERE team_id=$1", team_id)
        return None if not rows else str(rows[0]["enterprise_id"])

    async def workspaces_of(self, installed: InstalledWorkspace) -> list[str]:
        """The workspaces an installation serves: its own, or every workspace of the org seen so far but those
        served by an install of their own (which `installed` prefers, and which outlives the org's)."""
        if installed.team_id:
            return [installed.team_id]
        rows = await self.sql.fetch(
            "SELECT team_id FROM slack_workspaces w WHERE enterprise_id=$1 AND NOT EXISTS"
            " (SELECT 1 FROM slack_installations i WHERE i.team_id=w.team_id) ORDER BY team_id",
            installed.enterprise_id,
        )
        return [str(r["team_id"]) for r in rows]

    async def unserved(self, team_ids: list[str], enterprise_id: str = "") -> list[str]:
        """Of the workspaces a deleted install served, those no install serves any more: on Grid, a workspace whose
        own install is deleted stays served by its org's org-wide one, so its turns and channels stay."""
        return [team for team in team_ids if await self.installed(team, enterprise_id) is None]

    async def mark_removed(self, team_ids: list[str], now: float | None = None) -> None:
        """The app was uninstalled from these workspaces: their bindings go after `purge_days` (or are kept)."""
        now = time.time() if now is None else now
        purge = None if self.purge_days is None else now + self.purge_days * 86400
        for team in team_ids:
            await self.sql.execute(
                "INSERT INTO slack_workspaces (team_id, removed_at, purge_after) VALUES ($1,$2,$3)"
                " ON CONFLICT (team_id) DO UPDATE SET removed_at=excluded.removed_at,"
                " purge_after=excluded.purge_after",
                team,
                now,
                purge,
            )

    async def due_for_purge(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        rows = await self.sql.fetch(
            "SELECT team_id FROM slack_workspaces WHERE purge_after IS NOT NULL AND purge_after<=$1", now
        )
        return [str(r["team_id"]) for r in rows]

    async def purged(self, team_id: str) -> None:
        """The removed workspace's bindings are gone: its own Letta server and key (`/letta setup`) go with them,
        an encrypted secret of a workspace that left is kept no longer (a new install sets them up again)."""
        await self.sql.execute(
            "UPDATE slack_workspaces SET purge_after=NULL, letta_base_url=NULL, letta_api_key=NULL WHERE team_id=$1",
            team_id,
        )

    async def end_unfinished_turns(self, team_id: str) -> list[int]:
        """The workspace's accepted turns that had not finished end here (status `uninstalled`); nothing is posted."""
        rows = await self.sql.fetch(
            f"SELECT id FROM turns WHERE team_id=$1 AND {UNFINISHED} ORDER BY id", team_id  # noqa: S608
        )
        ids = [int(r["id"]) for r in rows]
        if ids:
            # Their files' bytes go now (docs/files.md: kept only until the turn ends), not with the turn's row.
            await self.sql.execute(
                "DELETE FROM turn_attachments WHERE turn_id IN"  # noqa: S608
                f" (SELECT id FROM turns WHERE team_id=$1 AND {UNFINISHED})",
                team_id,
            )
            now = time.time()
            stamp = _timestamp(self.sql, now)
            await self.sql.execute(
                "UPDATE turns SET status='uninstalled', error='the app was removed from the workspace',"  # noqa: S608
                f" updated_at=$2 WHERE team_id=$1 AND {UNFINISHED}",
                team_id,
                stamp,
            )
        return ids

    # ---------------------------------------------------------------- a generated secret

    async def secret(self, name: str) -> str:
        """A random secret made once and kept (encrypted) in the database, shared by every process."""
        made = secrets.token_urlsafe(32)
        await self.sql.execute(
            "INSERT INTO bridge_secrets (name, value) VALUES ($1,$2) ON CONFLICT (name) DO NOTHING",
            name,
            self.cipher.encrypt(made),
        )
        rows = await self.sql.fetch("SELECT value FROM bridge_secrets WHERE name=$1", name)
        return self.cipher.decrypt(rows[0]["value"])


def _timestamp(sql: Sql, now: float) -> Any:
    """`turns.updated_at` as each backend keeps it: ISO text (SQLite) or a timestamptz (Postgres)."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(now, UTC)
    return moment.isoformat() if sql._sqlite else moment
