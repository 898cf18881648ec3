"""A fake Slack (Web API, response_url hooks, Socket Mode) on 127.0.0.1 for the bridge's tests.

It runs an aiohttp server on its own thread and event loop so synchronous tests, Bolt apps and
slack_sdk clients in any loop can talk to it.  Response bodies, statuses and headers come from
the reference files in reference/slack/web-api in this repository,
so the bridge is tested against the documented wire format rather than against our own guesses.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.slack_files import SlackFileServer
from tests.fakes.slack_oauth import CLIENT_ID, CLIENT_SECRET, Grant, SlackOAuth
from tests.fakes.slack_reference import (
    DEFAULT_SCOPES,
    JSON_CT,
    REFERENCE,
    RESPONSE_URL_MAX_USES,
    jsonish,
    loads_dict,
    ref_body,
)
from tests.fakes.slack_sessions import SlackSessions
from tests.fakes.slack_socket import SlackSocketMode
from tests.fakes.slack_streams import SlackStreams
from tests.fakes.slack_triggers import SlackTriggers
from tests.fakes.slack_workspace import SlackWorkspace

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "DEFAULT_SCOPES", "Call", "FakeSlack", "Grant"]


@dataclass
class Call:
    """One Web API request as the fake received it (``status``/``response`` = what it answered)."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    token: str | None
    at: float
    http_method: str = "POST"
    status: int = 0
    response: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)  # the query-string part of args alone

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.response is None else self.response.get("error")


_Result = tuple[int, dict[str, str], dict[str, Any]]


class FakeSlack(
    SlackFileServer, SlackOAuth, SlackSocketMode, SlackSessions, SlackStreams, SlackTriggers, SlackWorkspace
):
    """Fake Slack workspace; start() it, point AsyncWebClient(base_url=fake.api_url) at it, inspect calls."""

    def __init__(
        self,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        team_id: str = "T0123ABCD",
        bot_user_id: str = "U0BOTABCD",
        bot_id: str = "B0123ABCD",
        scopes: str = DEFAULT_SCOPES,
        app_id: str = "A0123ABCD",
    ) -> None:
        self.bot_token, self.app_token, self.team_id = bot_token, app_token, team_id
        self.bot_user_id, self.bot_id, self.scopes, self.app_id = bot_user_id, bot_id, scopes, app_id
        self.api_url = ""
        self.base_url = ""
        self.calls: list[Call] = []
        self.response_posts: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._failures: dict[str, list[list[Any]]] = {}  # method -> [[status, headers, body, remaining]]
        self._landed_failures: dict[str, int] = {}  # method -> how many more calls succeed yet answer 500
        self._landed_drops: dict[str, int] = {}  # method -> how many more calls succeed, then lose their answer
        # method -> seconds a call waits, done, before it is answered (a slow answer on the way back).
        self.answer_delays: dict[str, float] = {}
        self._revoked = False
        self._revoked_tokens: set[str] = set()  # issued tokens ended by auth.revoke
        self._hooks: dict[str, int] = {}
        self._hook_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._caller: Grant | None = None
        self._token: str | None = None  # the token of the call being answered
        self._headers: dict[str, str] = {}
        self._init_files()
        self._init_oauth()
        self._init_sockets()
        self._init_sessions()
        self._init_streams()
        self._init_triggers()
        self._init_workspace()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start the server thread; returns the Web API base URL (with the trailing slash slack_sdk needs)."""
        if self._thread is not None:
            raise RuntimeError("FakeSlack already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="FakeSlack", daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(10)
        self.base_url = f"http://127.0.0.1:{port}/"
        self.api_url = self.base_url + "api/"
        return self.api_url

    def stop(self) -> None:
        """Close sockets, stop the server and join its thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._astop(), self._loop).result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _astart(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{hook}", self._handle_response_url)
        app.router.add_get("/ws", self._handle_ws)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_get("/files-pri/{key}/download/{name}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _astop(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ test-facing API

    def calls_to(self, method: str) -> list[Call]:
        """All calls of one Web API method, in arrival order."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None, thread_ts: str | None = None) -> list[Call]:
        """Successful chat.postMessage calls, optionally only those to ``channel`` / ``thread_ts``."""
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if c.ok
            and (channel is None or c.args.get("channel") == channel)
            and (thread_ts is None or c.args.get("thread_ts") == thread_ts)
        ]

    def fail_next(
        self,
        method: str,
        error: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with a canned answer.

        ``status`` None means: 429 for ``ratelimited`` (or when no error is given), else 200.  A 429 gets
        ``retry-after: 1`` unless ``headers`` says otherwise (the reference shows 30; tests want speed).
        Error bodies come from the method's reference case when one exists (e.g. invalid_blocks).
        """
        if status is None:
            status = 429 if error in (None, "ratelimited") else 200
        error = error or ("ratelimited" if status == 429 else "internal_error")
        if body is None:
            cases = REFERENCE.get(method, {})
            body = ref_body(method, error) if error in cases else {"ok": False, "error": error}
        final_headers = {"content-type": JSON_CT}
        if status == 429 and not any(k.lower() == "retry-after" for k in headers or {}):
            final_headers["retry-after"] = "1"
        final_headers.update(headers or {})
        with self._lock:
            self._failures.setdefault(method, []).append([status, final_headers, body, times])

    def land_then_fail_next(self, method: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` do their work (a post lands), then answer ``status`` as if
        they had failed: the caller cannot know whether they did."""
        with self._lock:
            self._landed_failures[method] = self._landed_failures.get(method, 0) + times

    def land_then_drop_next(self, method: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` do their work (a post lands), then the connection is closed with
        no answer, as a proxy or load balancer on the way drops it: the caller cannot know whether they did."""
        with self._lock:
            self._landed_drops[method] = self._landed_drops.get(method, 0) + times

    def set_token_revoked(self, revoked: bool = True) -> None:
        """While set, every Web API call answers ``{"ok": false, "error": "token_revoked"}``."""
        with self._lock:
            self._revoked = revoked

    def response_url(self) -> str:
        """A fresh response_url on this server: POST JSON, 200 ``ok``, at most 5 uses then 404."""
        if not self.base_url:
            raise RuntimeError("FakeSlack is not started")
        with self._lock:
            hook = str(next(self._hook_ids))
            self._hooks[hook] = 0
        return f"{self.base_url}response/{hook}"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until true; AssertionError describing what the fake saw on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                try:
                    what = inspect.getsource(predicate).strip()
                except (OSError, TypeError):
                    what = repr(predicate)
                with self._lock:
                    seen = [c.method if c.ok else f"{c.method}!{c.error}" for c in self.calls[-25:]]
                    acks, hooks = len(self.socket_acks), len(self.response_posts)
                raise AssertionError(
                    f"timed out after {timeout}s waiting for: {what}\n  last Web API calls: {seen}\n"
                    f"  socket acks: {acks}, response_url posts: {hooks}"
                )
            time.sleep(0.01)

    # ------------------------------------------------------------------ HTTP plumbing
    async def _handle_response_url(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        raw = await request.read()
        with self._lock:
            uses = self._hooks.get(hook)
            if uses is None or uses >= RESPONSE_URL_MAX_USES:
                return web.Response(status=404, text="used_url" if uses else "expired_url")
            body = loads_dict(raw)
            if body is None:
                return web.Response(status=400, text="invalid_payload")
            self._hooks[hook] = uses + 1
            self.response_posts.append({**body, "_url": f"{self.base_url}response/{hook}"})
        return web.Response(text="ok")

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        query = dict(request.query.items())
        args: dict[str, Any] = dict(query)
        ctype = request.content_type.lower()
        if raw and "json" in ctype:
            args.update(loads_dict(raw) or {})
        elif raw and "x-www-form-urlencoded" in ctype:
            args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else args.get("token")
        call = Call(method, args, headers, token, time.monotonic(), request.method, query=query)
        with self._lock:
            self._headers = headers
            status, out_headers, body = self._dispatch(method, args, token)
            call.status, call.response = status, body
            self.calls.append(call)
            delay = self.answer_delays.get(method, 0.0)
            dropped = status == 200 and self._landed_drops.get(method, 0) > 0
            if dropped:
                self._landed_drops[method] -= 1
        if delay:
            await asyncio.sleep(delay)
        if dropped and request.transport is not None:
            request.transport.abort()  # done, and the answer lost on the way
        return web.Response(status=status, body=json.dumps(body).encode(), headers=out_headers)

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> _Result:
        queue = self._failures.get(method)
        if queue:
            status, headers, body, remaining = queue[0]
            queue[0][3] -= 1
            if remaining <= 1:
                queue.pop(0)
            return status, dict(headers), copy.deepcopy(body)
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)  # e.g. _api_chat_postMessage
        if handler is None:
            return self._error(method, "unknown_method")
        if self._revoked:
            return self._error(method, "token_revoked")
        self._caller, self._token = None, token
        if method.startswith("oauth."):  # client credentials, no token
            refused = self._client_ok(args, self._headers)
            if refused is not None:
                return self._error(method, refused)
        elif token in self._issued:
            issued = self._issued[token]
            if issued.grant.revoked or token in self._revoked_tokens:
                return self._error(method, "token_revoked")
            if issued.expires_at is not None and issued.expires_at < time.time():
                return self._error(method, "token_expired")
            self._caller = issued.grant
        elif not token:
            return self._error(method, "not_authed")
        else:
            wanted = self.app_token if method == "apps.connections.open" else self.bot_token
            if token != wanted:
                known = token in (self.app_token, self.bot_token)
                return self._error(method, "not_allowed_token_type" if known else "invalid_auth")
        result = handler(args)
        if isinstance(result, str):
            return self._error(method, result)
        if self._landed_failures.get(method):
            self._landed_failures[method] -= 1
            return 500, {"content-type": "text/html"}, {"ok": False, "error": "internal_error"}
        ok_case = REFERENCE.get(method, {}).get("ok")
        headers = {"content-type": JSON_CT}
        if ok_case is not None:
            headers.update(ok_case["headers"])
            headers["x-oauth-scopes"] = self.scopes
        return 200, headers, result

    def _error(self, method: str, error: str) -> _Result:
        case = REFERENCE.get(method, {}).get(error)
        if case is not None:
            return case["status"], dict(case["headers"]), copy.deepcopy(case["body"])
        if error == "ratelimited":
            return 429, {"content-type": JSON_CT, "retry-after": "60"}, {"ok": False, "error": error}
        return 200, {"content-type": JSON_CT}, {"ok": False, "error": error}

    # ------------------------------------------------------------------ Web API methods
    def _api_auth_test(self, args: dict[str, Any]) -> dict[str, Any] | str:
        body = ref_body("auth.test", "ok")
        body.update(team_id=self.team_id, user_id=self.bot_user_id, bot_id=self.bot_id)
        grant = self._caller
        if grant is not None:
            body.update(team_id=grant.team_id, team=grant.team_name, user_id=grant.bot_user_id, bot_id=grant.bot_id)
            body.update(is_enterprise_install=grant.org_wide)
            if grant.enterprise_id:
                body["enterprise_id"] = grant.enterprise_id
        return body

    def _api_auth_revoke(self, args: dict[str, Any]) -> dict[str, Any] | str:
        """The calling token stops working (auth.revoke.json); `test` revokes nothing and says so."""
        if str(args.get("test", "")).lower() in ("1", "true"):
            return ref_body("auth.revoke", "ok_test")
        if self._token in self._issued:
            self._revoked_tokens.add(self._token)
        else:  # the single workspace's own bot token
            self._revoked = True
        return ref_body("auth.revoke", "ok")

    def _api_views_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        view = jsonish(args.get("view"))
        if not args.get("trigger_id"):
            return "invalid_trigger_id"
        if self._trigger_exchanged(str(args["trigger_id"])):
            return "exchanged_trigger_id"
        if self._trigger_expired(str(args["trigger_id"])):
            return "expired_trigger_id"
        if not isinstance(view, dict) or view.get("type") != "modal":
            return "invalid_arguments"
        self._exchange_trigger(str(args["trigger_id"]))
        body = ref_body("views.open", "ok")
        body["view"].update({k: v for k, v in view.items() if k in ("blocks", "title", "callback_id", "submit")})
        return body



















