"""Bolt's authorize over the bridge's installation store (OAuth mode): each workspace it serves recorded, tokens
renewed through `Workspaces.rotated` (one process at a time), and a request Slack's own trouble kept from being
authorized answered 500 (`TryLater`) to be delivered again, where Bolt would answer 200 and lose it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.slack.bolt_app import REQUEST_WORKSPACE, TryLater
from bridge.slack.failures import slack_error
from bridge.workspaces import Workspaces

log = logging.getLogger(__name__)

# oauth.v2.access errors that say nothing against the refresh token or the app's credentials: Slack's own trouble.
PASSING_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


def renewal_may_pass(exc: SlackApiError) -> bool:
    """Whether a refused token renewal may work when tried again: Slack's rate limit or its trouble (429, 5xx), not
    a refresh token or app credentials it refused (invalid_refresh_token, bad_client_secret, ...)."""
    status = exc.response.status_code if exc.response is not None else 0
    return status == 429 or status >= 500 or slack_error(exc) in PASSING_ERRORS


class LatestPerWorkspace(dict[str, AuthorizeResult]):
    """Bolt's authorize cache (token -> auth.test's answer) holding only each workspace's latest token: a renewed
    token's answer replaces its predecessor's, which no request carries any more, instead of piling up beside it
    (two renewals a day per workspace, for as long as the process runs)."""

    def __init__(self) -> None:
        super().__init__()
        self._tokens: dict[tuple[str | None, str | None], str] = {}

    def __setitem__(self, token: str, result: AuthorizeResult) -> None:
        key = (result.enterprise_id, result.team_id)
        earlier = self._tokens.get(key)
        if earlier is not None and earlier != token:
            self.pop(earlier, None)
        self._tokens[key] = token
        super().__setitem__(token, result)


_REFUSED: ContextVar[bool] = ContextVar("token_renewal_refused", default=False)  # this request's, for __call__


class WorkspaceAuthorize(AsyncInstallationStoreAuthorize):
    """Bolt's authorize over the bridge's installation store: records each workspace (and its org) it serves, and
    renews tokens through `Workspaces.rotated` (one process at a time)."""

    def __init__(self, workspaces: Workspaces, **kwargs: Any) -> None:
        # Bolt keeps each token's auth.test answer (cache_enabled): one round trip to Slack per token, not one
        # before every request, which a burst would also push past auth.test's rate limit; only the workspace's
        # current token's is kept.
        super().__init__(cache_enabled=True, **kwargs)
        self.authorize_result_cache = LatestPerWorkspace()
        self._workspaces = workspaces

    async def __call__(self, *, context: Any, enterprise_id: str | None, team_id: str | None, **kwargs: Any) -> Any:
        """Bolt's answer; but where Bolt found the workspace's bot and only Slack's auth.test failed (Bolt reads
        any failure as "not installed", answered 200: the request lost), TryLater, so it is delivered again."""
        refused = _REFUSED.set(False)
        try:
            result = await super().__call__(context=context, enterprise_id=enterprise_id, team_id=team_id, **kwargs)
            if result is None and not _REFUSED.get() and await self._installed(context, enterprise_id, team_id):
                raise TryLater(f"Slack did not confirm the bot token workspace={team_id or enterprise_id}")
        finally:
            _REFUSED.reset(refused)
        workspace = team_id or (context.get(REQUEST_WORKSPACE) if enterprise_id else None)
        if result is not None and workspace:
            await self._workspaces.seen(workspace, enterprise_id)
        return result

    async def _installed(self, context: Any, enterprise_id: str | None, team_id: str | None) -> bool:
        bot = await self.installation_store.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=context.is_enterprise_install
        )
        return bot is not None and bool(bot.bot_token)

    async def _rotate_and_save_tokens_if_necessary(self, installation: Installation | None) -> Installation | None:
        """Renewed tokens, or None when none were needed. Bolt reads a SlackTokenRotationError as "not installed"
        and answers 200, losing the request: a renewal that may work later is raised as TryLater (answered 500,
        delivered again) instead, and only one that cannot (its refresh token refused) is left to Bolt. Slack out of
        reach was a 500 already, but logged as a crash."""
        if installation is None:
            return None
        team = installation.team_id or installation.enterprise_id or ""
        try:
            return await self._workspaces.rotated(installation)
        except (SlackTokenRotationError, SlackApiError) as exc:
            refused = exc.api_error if isinstance(exc, SlackTokenRotationError) else exc
            error = slack_error(refused)
            if renewal_may_pass(refused):
                raise TryLater(f"the bot token could not be renewed workspace={team} error={error}") from exc
            log.error("slack request dropped: the bot token cannot be renewed error=%s workspace=%s; the workspace "
                      "must install the app again", error, team)
            _REFUSED.set(True)
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:  # Slack out of reach
            raise TryLater(f"the bot token could not be renewed workspace={team} error={type(exc).__name__}") from exc
