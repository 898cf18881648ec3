"""Bolt's install flow (OAuth mode) with its failures said to the installer in plain words, each with the way back
to the install page, where Bolt shows "Oops, Something Went Wrong!" and a code (`invalid_state`, ...).

Bolt reads every failure after Slack granted the install as `invalid_code`: a bot token Slack did not confirm
(auth.test, its own trouble) blamed the code, and Slack out of reach or a database that did not save it was a
traceback and a bare 500. Here each is told apart, logged in one line, and nothing is saved of a half install.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import AsyncFailureArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.slack.failures import slack_error
from bridge.store.oauth_state import StateStoreDown
from bridge.workspace_authorize import renewal_may_pass

log = logging.getLogger(__name__)

# A reloaded or reopened page after a finished install looks like a stranger's link: the bridge cannot tell which.
MAYBE = (
    "If you just finished installing, the app is installed: look for it in Slack. Otherwise start the install again "
    "from the install page."
)
UNUSABLE = ("invalid_browser", "invalid_state")  # the install may have finished: the page does not say it did not
# Bolt's reasons, and the bridge's own for what Bolt calls invalid_code: (status, what the installer reads).
PAGES: dict[str, tuple[int, str]] = {
    "access_denied": (200, "The install was cancelled in Slack: nothing was installed."),
    "invalid_browser": (
        400,
        "This install link cannot be used: this page was opened in another browser than the one that started the "
        f"install, or the browser kept no cookie from the install page (as after a finished install). {MAYBE}",
    ),
    "invalid_state": (
        401,
        "This install link cannot be used again: it expired or was already used (each one works once, for ten "
        f"minutes). {MAYBE}",
    ),
    "missing_code": (400, "Slack sent no code back with this page. Nothing was installed."),
    "invalid_code": (
        401,
        "Slack did not accept the install's code (each one works once, for ten minutes). Nothing was installed.",
    ),
    "bot_unconfirmed": (
        503,
        "Slack granted the install but did not confirm the app's bot token (Slack's own trouble, for a moment). "
        "Nothing was saved.",
    ),
    "slack_trouble": (
        503, "Slack could not be reached, or had trouble of its own, to finish the install. Nothing was saved."
    ),
    "storage_error": (503, "The bridge could not save the install (its database did not answer). Nothing was saved."),
    "database_down": (
        503, "The bridge's database did not answer, so the install could not go on. Nothing was installed: try again "
        "in a moment."
    ),
}
OTHER = (400, "The install did not finish. Nothing was installed.")

_TROUBLE: ContextVar[str | None] = ContextVar("install_trouble", default=None)  # this callback's, for the page


def failure_page(reason: str, install_path: str) -> BoltResponse:
    """The page for a failed install: what happened, and the link to start again."""
    status, words = PAGES.get(reason, OTHER)
    heading = "This install link cannot be used" if reason in UNUSABLE else "The app was not installed"
    body = (
        f'<html><head><meta charset="utf-8"><title>{heading}</title></head>'
        '<body style="font-family: sans-serif; padding: 10px 15px">'
        f"<h2>{heading}</h2><p>{html.escape(words)}</p>"
        f'<p><a href="{html.escape(install_path)}">Start the install again</a>, or ask whoever runs the bridge if '
        "it keeps happening.</p></body></html>"
    )
    return BoltResponse(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})


class WorkspaceInstall(AsyncOAuthFlow):
    """Bolt's install flow: the install page, then Slack's redirect back with the code (exchanged, confirmed with
    auth.test, stored), each failure its own page."""

    def __init__(self, stored: Callable[[str], None] = lambda _team: None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failure_handler = self._failure
        self._stored = stored  # told each workspace installed (again): Workspaces.reinstalled

    async def handle_installation(self, request: AsyncBoltRequest) -> BoltResponse:
        try:
            return await super().handle_installation(request)
        except StateStoreDown:  # logged where it happened
            return failure_page("database_down", self.install_path)

    async def handle_callback(self, request: AsyncBoltRequest) -> BoltResponse:
        trouble = _TROUBLE.set(None)
        try:
            return await super().handle_callback(request)
        except StateStoreDown:  # logged where it happened
            return failure_page("database_down", self.install_path)
        finally:
            _TROUBLE.reset(trouble)

    async def _failure(self, args: AsyncFailureArgs) -> BoltResponse:
        reason = _TROUBLE.get() or args.reason
        if reason != "storage_error":  # that one was logged where it happened
            log.warning("slack install not finished reason=%s", reason)
        return failure_page(reason, self.install_path)

    async def run_installation(self, code: str) -> Installation | None:
        """Bolt's exchange of the code for the bot token, confirmed with auth.test; the code never logged."""
        settings = self.settings
        try:
            answer = await self.client.oauth_v2_access(
                code=code, client_id=settings.client_id, client_secret=settings.client_secret,
                redirect_uri=settings.redirect_uri,
            )
        except SlackApiError as exc:
            if renewal_may_pass(exc):
                _TROUBLE.set("slack_trouble")
            log.warning("slack install: oauth.v2.access refused the code error=%s", slack_error(exc))
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack install: oauth.v2.access unreachable error=%s", type(exc).__name__)
            _TROUBLE.set("slack_trouble")
            return None
        token: str | None = answer.get("access_token")
        enterprise, team = answer.get("enterprise") or {}, answer.get("team") or {}
        org_wide = bool(answer.get("is_enterprise_install"))
        confirmed: dict[str, Any] = {}
        if token is not None:
            try:
                confirmed = dict((await self.client.auth_test(token=token)).data)  # type: ignore[arg-type]
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                shown = slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
                log.warning("slack install: auth.test did not confirm the new bot token error=%s team=%s", shown,
                            team.get("id") or enterprise.get("id"))
                _TROUBLE.set("bot_unconfirmed")
                return None
        installer = answer.get("authed_user") or {}
        return Installation(
            app_id=answer.get("app_id"),
            enterprise_id=enterprise.get("id"),
            enterprise_name=enterprise.get("name"),
            enterprise_url=confirmed.get("url") if org_wide else None,
            team_id=team.get("id"),
            team_name=team.get("name"),
            bot_token=token,
            bot_id=confirmed.get("bot_id"),
            bot_user_id=answer.get("bot_user_id"),
            bot_scopes=answer.get("scope") or "",
            bot_refresh_token=answer.get("refresh_token"),
            bot_token_expires_in=answer.get("expires_in"),
            user_id=installer.get("id") or "",  # the installer (Slack always names one)
            is_enterprise_install=org_wide,
            token_type=answer.get("token_type"),
        )

    async def store_installation(self, request: AsyncBoltRequest, installation: Installation) -> None:
        """Saved; a database that did not answer is Bolt's storage_error (its page), not a traceback."""
        try:
            await super().store_installation(request, installation)
        except Exception as exc:
            log.error("slack install not saved: the database failed error=%s team=%s", type(exc).__name__,
                      installation.team_id or installation.enterprise_id)
            raise BoltError("the installation could not be saved") from exc
        self._stored(installation.team_id or installation.enterprise_id or "")
