"""A workspace's own Letta server and key (set with /letta setup, schema v5), kept in `slack_workspaces`: the key
encrypted, and the URL too when it holds a proxy's user and password (`sealed:` then the ciphertext; before schema
v17 such a URL was kept in the clear, which `serve` seals at start)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from bridge.logs import mask
from bridge.store.crypto import Cipher
from bridge.store.sql import Sql

if TYPE_CHECKING:
    from bridge.config import Settings

log = logging.getLogger(__name__)
SEALED_URL = "sealed:"  # a workspace's Letta URL that holds a password, stored encrypted after this


@dataclass(frozen=True)
class WorkspaceLetta:
    """A workspace's own Letta server, set with /letta setup."""

    base_url: str
    api_key: str | None
    set_by: str
    set_at: float

    def applied_to(self, settings: Settings) -> Settings:
        """The environment's settings with this server and key in place of LETTA_BASE_URL and LETTA_API_KEY."""
        key = SecretStr(self.api_key) if self.api_key else None
        return settings.model_copy(update={"letta_base_url": self.base_url, "letta_api_key": key})


def _mask_password(url: str) -> None:
    """A workspace's Letta URL's password, learnt after logging was set up: masked in every line from now on."""
    password = urlsplit(url).password or ""
    for shape in {password, unquote(password)}:
        mask(shape)


class WorkspaceLettaRows:
    """The installation store's per-workspace Letta rows (a part of BridgeInstallationStore)."""

    sql: Sql
    cipher: Cipher

    async def letta(self, team_id: str) -> WorkspaceLetta | None:
        rows = await self.sql.fetch(
            "SELECT letta_base_url, letta_api_key, letta_set_by, letta_set_at FROM slack_workspaces WHERE team_id=$1",
            team_id,
        )
        if not rows or not rows[0]["letta_base_url"]:
            return None
        r = rows[0]
        key = self.cipher.decrypt(r["letta_api_key"]) if r["letta_api_key"] else None
        url = str(r["letta_base_url"])
        if url.startswith(SEALED_URL):
            url = self.cipher.decrypt(url.removeprefix(SEALED_URL))
        _mask_password(url)  # a plain one too: an older bridge's, until seal_plain_urls seals it
        return WorkspaceLetta(url, key, r["letta_set_by"] or "", float(r["letta_set_at"] or 0))

    async def letta_url(self, team_id: str) -> str | None:
        """The workspace's own Letta URL as stored (`sealed:` and ciphertext when it holds a password), its key left
        encrypted: what `workspaces list` shows needs no BRIDGE_ENCRYPTION_KEY for a URL in the clear."""
        rows = await self.sql.fetch("SELECT letta_base_url FROM slack_workspaces WHERE team_id=$1", team_id)
        return str(rows[0]["letta_base_url"]) if rows and rows[0]["letta_base_url"] else None

    async def seal_plain_urls(self) -> int:
        """Seal the Letta URLs with a password that a bridge from before schema v17 stored in the clear (an SQL
        migration cannot: it needs BRIDGE_ENCRYPTION_KEY), masking each in the logs; `serve` runs it at start.
        Each row is rewritten only if it still holds what was read, so processes starting together seal it once."""
        query = "SELECT team_id, letta_base_url AS url FROM slack_workspaces WHERE letta_base_url<>''"
        rows = await self.sql.fetch(query)
        plain = [(r["team_id"], r["url"]) for r in rows if not r["url"].startswith(SEALED_URL)]
        plain = [(team, url) for team, url in plain if urlsplit(url).password is not None]
        sealed = 0
        for team, url in plain:
            _mask_password(url)
            only_if_still = "UPDATE slack_workspaces SET letta_base_url=$1 WHERE team_id=$2 AND letta_base_url=$3"
            sealed += await self.sql.execute(only_if_still, SEALED_URL + self.cipher.encrypt(url), team, url)
        if sealed:
            log.info("Letta URLs with a password, stored in the clear by an older bridge, sealed count=%d", sealed)
        return sealed

    async def set_letta(self, team_id: str, base_url: str | None, api_key: str | None, actor: str) -> None:
        """Save the workspace's Letta server and key (encrypted; the URL too when it holds a user and password, a
        proxy's sign-in); no URL means the environment's default."""
        encrypted = self.cipher.encrypt(api_key) if api_key else None
        if base_url and urlsplit(base_url).password is not None:
            _mask_password(base_url)
            base_url = SEALED_URL + self.cipher.encrypt(base_url)
        await self.sql.execute(
            "INSERT INTO slack_workspaces (team_id, letta_base_url, letta_api_key, letta_set_by, letta_set_at)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (team_id) DO UPDATE SET letta_base_url=excluded.letta_base_url,"
            " letta_api_key=excluded.letta_api_key, letta_set_by=excluded.letta_set_by,"
            " letta_set_at=excluded.letta_set_at",
            team_id,
            base_url,
            encrypted if base_url else None,
            actor,
            time.time(),
        )
