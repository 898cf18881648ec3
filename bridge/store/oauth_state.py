"""OAuth `state` values kept in the database (both backends): signed, used once, expiring."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from logging import Logger
from typing import Any

from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bridge.store.installations import STATE_SECONDS, BridgeInstallationStore

log = logging.getLogger(__name__)


class StateStoreDown(Exception):
    """The database did not answer while a state was issued or used: the install page says so (a 503)."""


class BridgeStateStore(AsyncOAuthStateStore):
    """OAuth `state` values: random, signed with the state secret, kept in the database until used once or
    expired, so that a forged, replayed or stale redirect is refused whichever process it reaches."""

    def __init__(self, store: BridgeInstallationStore, secret: str | None, expiration_seconds: int = STATE_SECONDS):
        self._installs = store
        self._secret = secret
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> Logger:
        return log

    async def _key(self) -> bytes:
        if self._secret is None:
            try:
                self._secret = await self._installs.secret("slack_state_secret")
            except Exception as exc:
                log.error("slack install not started or finished: the database failed error=%s", type(exc).__name__)
                raise StateStoreDown from exc
        return self._secret.encode()

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        nonce = secrets.token_urlsafe(24)
        signature = hmac.new(await self._key(), nonce.encode(), hashlib.sha256).hexdigest()[:32]
        state = f"{nonce}.{signature}"
        now = time.time()
        try:
            await self._installs.sql.execute("DELETE FROM oauth_states WHERE expires_at<$1", now)
            await self._installs.sql.execute(
                "INSERT INTO oauth_states (state, expires_at) VALUES ($1,$2)", state, now + self.expiration_seconds
            )
        except Exception as exc:
            log.error("slack install not started: the database failed error=%s", type(exc).__name__)
            raise StateStoreDown from exc
        return state

    async def async_consume(self, state: str) -> bool:
        nonce, _, signature = (state or "").partition(".")
        if not nonce or not state.isascii():  # every state issued is; compare_digest raises on any other str
            log.warning("oauth state refused reason=not signed by this bridge")
            return False
        expected = hmac.new(await self._key(), nonce.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(signature, expected):
            log.warning("oauth state refused reason=not signed by this bridge")
            return False
        try:
            deleted = await self._installs.sql.execute(
                "DELETE FROM oauth_states WHERE state=$1 AND expires_at>=$2", state, time.time()
            )
        except Exception as exc:
            log.error("slack install not finished: the database failed error=%s", type(exc).__name__)
            raise StateStoreDown from exc
        if not deleted:
            log.warning("oauth state refused reason=unknown, used or expired")
        return deleted > 0
