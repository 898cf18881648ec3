"""OAuth for the fake Slack (oauth.v2.access.json): installs approved at /oauth/v2/authorize, codes exchanged
for tokens (rotating or not), refreshed and exchanged, a workspace's or an org-wide install."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.slack_reference import ref_body

CLIENT_ID = "1234567890.0987654321"
CLIENT_SECRET = "fake-client-secret-0123456789abcdef"


@dataclass
class Grant:
    """What one OAuth install grants (oauth.v2.access.json's cases): a workspace's bot, or an org-wide one."""

    team_id: str | None
    team_name: str = ""
    enterprise_id: str | None = None
    enterprise_name: str = ""
    org_wide: bool = False
    bot_user_id: str = "U0BOTABCD"
    bot_id: str = "B0123ABCD"
    rotation: bool = False
    expires_in: int = 43200
    revoked: bool = False


@dataclass
class Issued:
    grant: Grant
    expires_at: float | None


class SlackOAuth:
    """Mixed into FakeSlack, which provides app_id, scopes and _lock."""

    app_id: str
    scopes: str
    _lock: threading.RLock

    def _init_oauth(self) -> None:
        # Codes waiting for oauth.v2.access, tokens issued, refresh tokens not yet spent.
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.next_grant: Grant | None = None
        self._codes: dict[str, Grant] = {}
        self._issued: dict[str, Issued] = {}
        self._refresh: dict[str, Grant] = {}

    def install_next(self, grant: Grant) -> None:
        """The next visit to /oauth/v2/authorize approves this install (as the installer's click would)."""
        with self._lock:
            self.next_grant = grant

    def code_for(self, grant: Grant) -> str:
        with self._lock:
            code = f"{int(time.time())}.{uuid.uuid4().int % 10**13}.{uuid.uuid4().hex}"
            self._codes[code] = grant
        return code

    def tokens_of(self, team_or_org: str) -> list[str]:
        with self._lock:
            return [t for t, i in self._issued.items() if team_or_org in (i.grant.team_id, i.grant.enterprise_id)]

    def revoke(self, team_or_org: str) -> None:
        """Slack's side of an uninstall: the install's tokens stop working (token_revoked)."""
        with self._lock:
            for issued in self._issued.values():
                if team_or_org in (issued.grant.team_id, issued.grant.enterprise_id):
                    issued.grant.revoked = True

    def _issue(self, grant: Grant, case: str) -> dict[str, Any]:
        body = ref_body("oauth.v2.access", case)
        prefix = "xoxe.xoxb-1-" if grant.rotation else "xoxb-"
        token = prefix + uuid.uuid4().hex
        expires = time.time() + grant.expires_in if grant.rotation else None
        self._issued[token] = Issued(grant, expires)
        body.update(access_token=token, bot_user_id=grant.bot_user_id, app_id=self.app_id, scope=self.scopes)
        body["team"] = None if grant.org_wide else {"id": grant.team_id, "name": grant.team_name}
        body["enterprise"] = {"id": grant.enterprise_id, "name": grant.enterprise_name} if grant.enterprise_id else None
        body["is_enterprise_install"] = grant.org_wide
        if grant.rotation:
            refresh = "xoxe-1-" + uuid.uuid4().hex
            self._refresh[refresh] = grant
            body.update(refresh_token=refresh, expires_in=grant.expires_in)
        else:
            body.pop("refresh_token", None)
            body.pop("expires_in", None)
        return body

    def _client_ok(self, args: dict[str, Any], headers: dict[str, str]) -> str | None:
        client_id, secret = args.get("client_id"), args.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != self.client_id:
            return "invalid_client_id"
        if secret != self.client_secret:
            return "bad_client_secret"
        return None

    def _api_oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any] | str:
        grant_type = args.get("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            grant = self._refresh.pop(str(args.get("refresh_token")), None)
            if grant is None or grant.revoked:
                return "invalid_refresh_token"
            return self._issue(grant, "ok_refresh")
        if grant_type != "authorization_code":
            return "invalid_grant_type"
        grant = self._codes.pop(str(args.get("code")), None)
        if grant is None:
            return "invalid_code"
        case = "ok_org_wide" if grant.org_wide else "ok_token_rotation" if grant.rotation else "ok_workspace_no_org"
        return self._issue(grant, case)

    def _api_oauth_v2_exchange(self, args: dict[str, Any]) -> dict[str, Any] | str:
        issued = self._issued.get(str(args.get("token")))
        if issued is None:
            return "invalid_token"
        if issued.grant.rotation:
            return "token_already_exchanged"
        grant = Grant(**{**issued.grant.__dict__, "rotation": True})
        return self._issue(grant, "ok_token_rotation") | {"ok": True}

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """The installer's browser at slack.com/oauth/v2/authorize: approved at once (`install_next`), sent back to
        the app's redirect URL with a code and the state it came with."""
        query = dict(request.query.items())
        with self._lock:
            grant, self.next_grant = self.next_grant, None
        if query.get("client_id") != self.client_id or grant is None:
            return web.Response(status=400, text="invalid_client_id" if grant else "no install approved")
        redirect = query.get("redirect_uri") or self.redirect_uri
        separator = "&" if "?" in redirect else "?"
        target = f"{redirect}{separator}code={self.code_for(grant)}&state={query.get('state', '')}"
        raise web.HTTPFound(target)

    redirect_uri = ""  # the app's Redirect URL (Slack app settings > OAuth & Permissions)
