"""A fake Slack (Web API, response_url hooks, Socket Mode) on 127.0.0.1 for the bridge's tests.

It runs an aiohttp server on its own thread and event loop so synchronous tests, Bolt apps and
slack_sdk clients in any loop can talk to it.  Response bodies, statuses and headers come from
the reference files in reference/slack/web-api in this repository,
so the bridge is tested against the documented wire format rather than against our own guesses.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import inspect
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack_files import SlackFileServer
from tests.fakes.slack_stream import check_chunks, task_card_error
from tests.reference import SLACK

CAPTURES_DIR = SLACK
JSON_CT = "application/json; charset=utf-8"
RESPONSE_URL_MAX_USES = 5


def _load_reference(root: Path) -> dict[str, dict[str, Any]]:
    """method -> {case -> {status, headers, body}} from web-api/*.json (fail loudly if missing)."""
    folder = root / "web-api"
    if not folder.is_dir():
        raise FileNotFoundError(f"Slack reference not found at {folder}: the repository's reference/ folder is missing")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        out[data.get("method", path.stem)] = data["responses"]
    return out


REFERENCE = _load_reference(CAPTURES_DIR)
DEFAULT_SCOPES: str = REFERENCE["auth.test"]["ok"]["headers"]["x-oauth-scopes"]


def _ref_body(method: str, case: str) -> dict[str, Any]:
    """Deep copy of a reference response body (so tests can never mutate the templates)."""
    return copy.deepcopy(REFERENCE[method][case]["body"])


def _jsonish(value: Any) -> Any:
    """Form-encoded calls carry blocks/chunks as JSON strings; JSON calls carry real lists."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _loads_dict(raw: bytes | str) -> dict[str, Any] | None:
    """Parse a JSON object; None for anything else (bad JSON, arrays, empty bodies)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _ts_key(ts: str) -> Decimal:
    try:
        return Decimal(ts)
    except (InvalidOperation, TypeError):
        return Decimal(0)


def _rich_text(text: str) -> list[dict[str, Any]]:
    """The rich_text block Slack derives from plain ``text``."""
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}]


def _chunk_text(args: dict[str, Any]) -> str | None:
    """Text of ``markdown_text`` plus markdown_text chunks; None when chunks are malformed."""
    text = str(args.get("markdown_text") or "")
    chunks = _jsonish(args.get("chunks"))
    if chunks is None:
        return text
    if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
        return None
    return text + "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")


def _blocks_error(blocks: Any) -> str | None:
    """Slack's limits for the blocks the bridge sends (reference/slack/limits.md, docs.slack.dev's context actions
    block and feedback buttons element): None when they may be posted, else the error Slack answers."""
    if not isinstance(blocks, list):
        return None
    if len(blocks) > 50:  # blocks per message (reference/slack/limits.md)
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section" and len(str((block.get("text") or {}).get("text", ""))) > 3000:
            return "invalid_blocks"
        if kind == "task_card" and task_card_error(block):
            return "invalid_blocks"
        if kind != "context_actions":
            continue
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
            return "invalid_blocks"
        for element in elements:
            if element.get("type") not in ("feedback_buttons", "icon_button"):
                return "invalid_blocks"
            if element.get("type") != "feedback_buttons":
                continue
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                if not isinstance(button, dict) or (button.get("text") or {}).get("type") != "plain_text":
                    return "invalid_blocks"
                if len(button["text"].get("text", "")) > 75 or not 0 < len(str(button.get("value", ""))) <= 2000:
                    return "invalid_blocks"
    return None


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


class FakeSlack(SlackFileServer):
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
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_sent: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._failures: dict[str, list[list[Any]]] = {}  # method -> [[status, headers, body, remaining]]
        self._landed_failures: dict[str, int] = {}  # method -> how many more calls succeed yet answer 500
        self._landed_drops: dict[str, int] = {}  # method -> how many more calls succeed, then lose their answer
        # method -> seconds a call waits, done, before it is answered (a slow answer on the way back).
        self.answer_delays: dict[str, float] = {}
        # Slack's rule since 2025 for apps outside the Marketplace: conversations.replies gives at most this many
        # messages a call, and after `replies_calls` calls answers 429 ratelimited (None: no such limits).
        self.replies_per_call: int | None = None
        self.replies_calls: int | None = None
        self._revoked = False
        self._revoked_tokens: set[str] = set()  # issued tokens ended by auth.revoke
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()  # channels deleted (delete_channel): posts there answer channel_not_found
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._streaming: set[tuple[str, str]] = set()
        # Each stream's tasks: (channel, ts) -> task id -> its task_update chunks in order (slack_stream.py).
        self.stream_tasks: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        self._reactions: set[tuple[str, str, str]] = set()
        self._hooks: dict[str, int] = {}
        self._hook_ids = itertools.count(1)
        self._last_ts_us = 0
        self._sockets: set[web.WebSocketResponse] = set()
        # Where apps.connections.open sends the client; None: this fake's own /ws. Real Slack's URL is on another
        # host (wss-primary.slack.com) than its Web API: a test points this at a port nobody listens on to play
        # that host unreachable from here (a firewall or proxy that lets slack.com through, not WebSockets).
        self.socket_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        # OAuth: codes waiting for oauth.v2.access, tokens issued, refresh tokens not yet spent.
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.next_grant: Grant | None = None
        self._codes: dict[str, Grant] = {}
        self._issued: dict[str, Issued] = {}
        self._refresh: dict[str, Grant] = {}
        self._caller: Grant | None = None
        self._token: str | None = None  # the token of the call being answered
        self._headers: dict[str, str] = {}
        # Agent sessions (agents.sessions.*): only an app declared as an agent may have them; the others are
        # refused as reference/slack/web-api/agents.sessions.setStatus.json says.
        self.agent_app = False
        self.stop_event_subscribed = True
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, thread_ts) -> the session
        self.session_log: list[tuple[str, str, str]] = []  # (channel, thread_ts, status) in the order set
        self.ephemerals: list[dict[str, Any]] = []  # chat.postEphemeral messages, as sent
        # The agent view of a DM (assistant.threads.*): each thread's title and suggested prompts.
        self.thread_titles: dict[tuple[str, str], str] = {}
        self.suggested: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._init_files()
        self._seed_reference_identities()

    # ------------------------------------------------------------------ OAuth (oauth.v2.access.json)
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
        body = _ref_body("oauth.v2.access", case)
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
    def open_streams(self) -> list[tuple[str, str]]:
        """(channel, ts) of the streaming messages not stopped yet."""
        with self._lock:
            return sorted(self._streaming)

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

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Current stored messages (posts after edits, finished/ongoing streams, seeded ones)."""
        with self._lock:
            out = [
                copy.deepcopy(m)
                for ch, msgs in self._messages.items()
                if channel is None or ch == channel
                for m in msgs
                if thread_ts is None or thread_ts in (m.get("ts"), m.get("thread_ts"))
            ]
        return sorted(out, key=lambda m: _ts_key(m["ts"]))

    def reactions(self, channel: str, ts: str) -> set[str]:
        """Reaction names the bot currently has on one message."""
        with self._lock:
            return {name for ch, t, name in self._reactions if ch == channel and t == ts}

    def add_user(
        self,
        user_id: str,
        name: str,
        display_name: str = "",
        real_name: str = "",
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        guest: str = "",
    ) -> None:
        """Register a user served by users.info (shaped like users.info.json's ok / ok_bot_user); `guest`: "multi"
        (is_restricted) or "single" (is_ultra_restricted), as the capture's notes say."""
        user = _ref_body("users.info", "ok_bot_user" if is_bot else "ok")["user"]
        real = real_name or name
        first, _, last = real.partition(" ")
        user.update(id=user_id, team_id=self.team_id, name=name, real_name=real)
        user.update(is_admin=is_admin, is_owner=is_owner, is_primary_owner=False, is_bot=is_bot)
        user.update(is_restricted=guest in ("multi", "single"), is_ultra_restricted=guest == "single")
        profile = user["profile"]
        profile.update(real_name=real, real_name_normalized=real, first_name=first, last_name=last)
        profile.update(display_name=display_name, display_name_normalized=display_name, team=self.team_id)
        if not is_bot:
            profile["email"] = f"{name}@example.com"
        with self._lock:
            self._users[user_id] = user

    def add_channel(
        self, channel_id: str, name: str, creator: str = "U0123ABCD", is_private: bool = False, is_mpim: bool = False
    ) -> None:
        """Register a channel served by conversations.info (shaped like conversations.info.json); `is_mpim`: a
        group DM (docs.slack.dev/reference/objects/mpim-object: private, neither channel nor group), whose thread
        conversations.replies reads only with mpim:history."""
        channel = _ref_body("conversations.info", "ok_private" if is_private or is_mpim else "ok")["channel"]
        channel.update(id=channel_id, name=name, name_normalized=name, creator=creator, is_private=is_private)
        if is_mpim:
            channel.update(is_mpim=True, is_private=True, is_channel=False, is_group=False)
        channel.update(context_team_id=self.team_id, shared_team_ids=[self.team_id])
        channel["topic"]["creator"] = channel["purpose"]["creator"] = creator
        with self._lock:
            self._channels[channel_id] = channel

    def archive_channel(self, channel_id: str, archived: bool = True) -> None:
        """The channel archived (or unarchived): conversations.info says `is_archived` (conversations.info.json),
        and chat.postMessage and reactions.add answer `is_archived` (their reference cases, from Slack's docs)."""
        with self._lock:
            self._channel_of(channel_id)["is_archived"] = archived

    def remove_bot(self, channel_id: str, removed: bool = True) -> None:
        """The bot removed from a public channel (or invited back): conversations.info says `is_member: false`
        and chat.postMessage answers `not_in_channel` (its reference case)."""
        with self._lock:
            self._channel_of(channel_id)["is_member"] = not removed

    def delete_channel(self, channel_id: str) -> None:
        """The channel deleted (or, private, the bot removed from it): Slack no longer shows it to the bot, so
        conversations.info and chat.postMessage answer `channel_not_found` (their reference cases)."""
        with self._lock:
            self._channels.pop(channel_id, None)
            self._deleted.add(channel_id)

    def _channel_of(self, channel_id: str) -> dict[str, Any]:
        """The channel conversations.info serves, registered as a public one (#<id>) when a test never added it."""
        if channel_id not in self._channels:
            self.add_channel(channel_id, channel_id.lower())
        return self._channels[channel_id]

    def _refusal(self, channel: Any) -> str | None:
        """Why Slack refuses a post or reaction in the channel as it stands, if it does."""
        if str(channel) in self._deleted:
            return "channel_not_found"
        state = self._channels.get(str(channel)) or {}
        if state.get("is_archived"):
            return "is_archived"
        return "not_in_channel" if state.get("is_member") is False else None

    def add_message(
        self,
        channel: str,
        text: str,
        user: str = "U0123ABCD",
        ts: str | None = None,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        user_profile: dict[str, Any] | None = None,
    ) -> str:
        """Seed a human message (e.g. a thread root) so conversations.replies can return it; returns its ts. With
        `files`, a file share (reference/slack/events/message_file_share.json); with `user_profile`, said by a
        person of another organisation in a Slack Connect channel, whose profile Slack embeds in the message
        (reference/slack/events/app_mention_slack_connect.json), `user_team` theirs."""
        ts = ts or self._next_ts()
        msg: dict[str, Any] = {"user": user, "type": "message", "ts": ts, "client_msg_id": str(uuid.uuid4())}
        msg.update(text=text, team=self.team_id)
        if files:
            msg.update(files=files, subtype="file_share", upload=True)
        if user_profile:
            team = str(user_profile.get("team") or self.team_id)
            msg.update(user_profile=user_profile, team=team, user_team=team, source_team=team)
        if thread_ts:
            msg["thread_ts"] = thread_ts
            parent = self._find(channel, thread_ts)
            if parent and parent.get("user"):
                msg["parent_user_id"] = parent["user"]
        msg["blocks"] = _rich_text(text)
        with self._lock:
            self._messages.setdefault(channel, []).append(msg)
        return ts

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
            body = _ref_body(method, error) if error in cases else {"ok": False, "error": error}
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

    # ------------------------------------------------------------------ Socket Mode
    def socket_connected(self) -> bool:
        """True while at least one Socket Mode client holds an open WebSocket."""
        with self._lock:
            return any(not ws.closed for ws in self._sockets)

    def open_sockets(self) -> set[int]:
        """Ids of the Socket Mode WebSockets open now: a test waits for one not among those it saw before."""
        with self._lock:
            return {id(ws) for ws in self._sockets if not ws.closed}

    def send_socket_event(
        self, payload: dict[str, Any], envelope_type: str = "events_api", retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Push one envelope to every connected socket client; returns its envelope_id. Slack delivers an event
        it has no acknowledgement for again, in a new envelope with `retry_attempt` and `retry_reason` set."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": envelope_type != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        sent = asyncio.run_coroutine_threadsafe(self._broadcast(envelope), self._loop).result(10)
        if not sent:
            raise AssertionError("send_socket_event: no Socket Mode client is connected")
        if payload.get("type") == "event_callback" and isinstance(payload.get("event"), dict):
            self.remember_event(payload["event"])
        return str(envelope["envelope_id"])

    def send_socket_disconnect(self, reason: str = "refresh_requested", close_after: float = 1.0) -> None:
        """Slack's `disconnect` message (reason `warning` ahead of a close, `refresh_requested` when it wants the
        client on a new connection): the client is to open a new one, and Slack then closes the connection it
        told to go whether or not the client did (here `close_after` seconds later)."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        with self._lock:
            told = [ws for ws in self._sockets if not ws.closed]
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        if not asyncio.run_coroutine_threadsafe(self._broadcast(message), self._loop).result(10):
            raise AssertionError("send_socket_disconnect: no Socket Mode client is connected")

        async def close_told() -> None:
            await asyncio.sleep(close_after)
            for ws in told:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack refreshed the connection")

        asyncio.run_coroutine_threadsafe(close_told(), self._loop)

    def drop_sockets(self) -> None:
        """Close every Socket Mode connection from Slack's side, as a socket that drops (or a host restarting) does;
        the client is to open a new one."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(10)

    async def _close_sockets(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for ws in sockets:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack closed the connection")

    def remember_event(self, event: dict[str, Any]) -> None:
        """Store a user ``message``/``app_mention`` event as channel history (conversations.replies sees it).

        send_socket_event does this itself; call it for events delivered over HTTP.  Same ts = stored once.
        """
        channel, ts = event.get("channel"), event.get("ts")
        if event.get("type") not in ("message", "app_mention") or event.get("subtype") or not channel or not ts:
            return
        msg = {k: copy.deepcopy(v) for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
        msg["type"] = "message"
        with self._lock:
            if self._find(channel, ts) is None:
                self._messages.setdefault(channel, []).append(msg)

    async def _broadcast(self, envelope: dict[str, Any]) -> int:
        with self._lock:
            sockets = [ws for ws in self._sockets if not ws.closed]
            self.socket_sent.append(envelope)
        for ws in sockets:
            await ws.send_str(json.dumps(envelope))
        return len(sockets)

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)  # autoping answers the SDK's pings
        await ws.prepare(request)
        debug_info = {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060}
        hello = {"type": "hello", "num_connections": 1, "debug_info": debug_info}
        hello["connection_info"] = {"app_id": self.app_id}
        await ws.send_json(hello)  # before registering, so no envelope can overtake the hello
        with self._lock:
            self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    parsed = _loads_dict(msg.data)
                    with self._lock:
                        self.socket_acks.append({"_raw": msg.data} if parsed is None else parsed)
        finally:
            with self._lock:
                self._sockets.discard(ws)
        return ws

    # ------------------------------------------------------------------ HTTP plumbing
    async def _handle_response_url(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        raw = await request.read()
        with self._lock:
            uses = self._hooks.get(hook)
            if uses is None or uses >= RESPONSE_URL_MAX_USES:
                return web.Response(status=404, text="used_url" if uses else "expired_url")
            body = _loads_dict(raw)
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
            args.update(_loads_dict(raw) or {})
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

    # ------------------------------------------------------------------ state helpers
    def _seed_reference_identities(self) -> None:
        """Pre-register the reference users (alice, bob, the bot) and channels (#agents, private, DM)."""
        for case in ("ok", "ok_plain_member", "ok_bot_user"):
            user = _ref_body("users.info", case)["user"]
            if case == "ok_bot_user":
                user["id"] = self.bot_user_id
                user["profile"].update(bot_id=self.bot_id, api_app_id=self.app_id)
            user["team_id"] = user["profile"]["team"] = self.team_id
            self._users[user["id"]] = user
        for case in ("ok", "ok_private", "ok_im"):
            channel = _ref_body("conversations.info", case)["channel"]
            channel["context_team_id"] = self.team_id
            self._channels[channel["id"]] = channel

    def _next_ts(self) -> str:
        with self._lock:
            now = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
            now += 1 - now % 2  # odd micros; signing.next_ts() uses even ones, so the two never collide
            self._last_ts_us = now
        return f"{now // 1_000_000}.{now % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            return next((m for m in self._messages.get(channel, []) if m.get("ts") == ts), None)

    def _store(self, channel: str, msg: dict[str, Any]) -> None:
        self._messages.setdefault(channel, []).append(copy.deepcopy(msg))

    # ------------------------------------------------------------------ Web API methods
    def _api_auth_test(self, args: dict[str, Any]) -> dict[str, Any] | str:
        body = _ref_body("auth.test", "ok")
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
            return _ref_body("auth.revoke", "ok_test")
        if self._token in self._issued:
            self._revoked_tokens.add(self._token)
        else:  # the single workspace's own bot token
            self._revoked = True
        return _ref_body("auth.revoke", "ok")

    def _api_views_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        view = _jsonish(args.get("view"))
        if not args.get("trigger_id"):
            return "invalid_trigger_id"
        if not isinstance(view, dict) or view.get("type") != "modal":
            return "invalid_arguments"
        body = _ref_body("views.open", "ok")
        body["view"].update({k: v for k, v in view.items() if k in ("blocks", "title", "callback_id", "submit")})
        return body

    def _api_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return {"ok": True, "url": self.socket_url or self.base_url.replace("http://", "ws://") + "ws"}

    def _api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = args.get("channel")
        text, blocks, md = args.get("text"), _jsonish(args.get("blocks")), args.get("markdown_text")
        if not channel:
            return "channel_not_found"
        refused = self._refusal(channel)
        if refused:
            return refused
        if md and (text or blocks):
            return "markdown_text_conflict"
        if not (text or blocks or md or args.get("attachments")):
            return "no_text"
        if blocks is not None and not isinstance(blocks, list):
            return "invalid_blocks_format"
        if _blocks_error(blocks):
            return "invalid_blocks"
        extra: dict[str, Any] = {}
        text = str(text or md or "")
        if len(text) > 40_000:
            text = text[:40_000]
            extra["response_metadata"] = _ref_body("chat.postMessage", "ok_truncated_text")["response_metadata"]
        ts, thread_ts, username = self._next_ts(), args.get("thread_ts"), args.get("username")
        if "chat:write.customize" not in self.scopes.split(","):
            username = None  # "username/icon_emoji/icon_url only take effect with chat:write.customize" (reference)
        if username:
            msg = _ref_body("chat.postMessage", "ok_with_custom_username")["message"]
            msg["username"] = username
            if args.get("icon_emoji"):
                msg["icons"]["emoji"] = args["icon_emoji"]
            elif args.get("icon_url"):
                msg["icons"] = {"image_48": args["icon_url"]}
            else:
                msg.pop("icons", None)
        else:
            msg = _ref_body("chat.postMessage", "ok")["message"]
            msg.update(user=self.bot_user_id, team=self.team_id)
            msg["bot_profile"].update(id=self.bot_id, app_id=self.app_id, team_id=self.team_id)
        msg.update(text=text, ts=ts, bot_id=self.bot_id, app_id=self.app_id)
        msg["blocks"] = blocks if blocks else _rich_text(text)
        msg.pop("thread_ts", None)
        msg.pop("parent_user_id", None)
        if thread_ts and thread_ts != ts:
            msg["thread_ts"] = thread_ts
            parent = self._find(channel, thread_ts)
            if parent and parent.get("user"):
                msg["parent_user_id"] = parent["user"]
        self._store(channel, msg)
        return {"ok": True, "channel": channel, "ts": ts, "message": msg, **extra}

    def _api_chat_update(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel, ts = args.get("channel"), args.get("ts")
        text, blocks, md = args.get("text"), _jsonish(args.get("blocks")), args.get("markdown_text")
        if not channel or channel not in self._messages:
            return "channel_not_found"
        if md and (text or blocks):
            return "markdown_text_conflict"
        if not (text or blocks or md or args.get("attachments")):
            return "no_text"
        if text and len(str(text)) > 4_000:
            return "msg_too_long"
        if _blocks_error(blocks):
            return "invalid_blocks"
        msg = self._find(channel, str(ts))
        if msg is None:
            return "message_not_found"
        if msg.get("bot_id") != self.bot_id:
            return "cant_update_message"
        if (channel, ts) in self._streaming:
            return "streaming_state_conflict"
        msg["text"] = str(text or md or "")
        msg["blocks"] = blocks if isinstance(blocks, list) and blocks else _rich_text(msg["text"])
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"], "message": copy.deepcopy(msg)}

    def _reaction(self, args: dict[str, Any], add: bool) -> dict[str, Any] | str:
        channel, ts, name = args.get("channel"), args.get("timestamp"), args.get("name")
        if not channel or not ts:
            return "no_item_specified"
        if not name:
            return "invalid_name"
        if add and self._channels.get(str(channel), {}).get("is_archived"):
            return "is_archived"
        key = (str(channel), str(ts), str(name))
        if add == (key in self._reactions):
            return "already_reacted" if add else "no_reaction"
        (self._reactions.add if add else self._reactions.discard)(key)
        return {"ok": True}

    def _api_reactions_add(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return self._reaction(args, add=True)

    def _api_reactions_remove(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return self._reaction(args, add=False)

    def _api_users_info(self, args: dict[str, Any]) -> dict[str, Any] | str:
        user = self._users.get(str(args.get("user")))
        return {"ok": True, "user": copy.deepcopy(user)} if user else "user_not_found"

    def _api_conversations_info(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = self._channels.get(str(args.get("channel")))
        return {"ok": True, "channel": copy.deepcopy(channel)} if channel else "channel_not_found"

    def _api_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if self.replies_calls is not None:
            if self.replies_calls <= 0:
                return "ratelimited"
            self.replies_calls -= 1
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            return "channel_not_found"
        if self._channels.get(str(channel), {}).get("is_mpim") and "mpim:history" not in self.scopes.split(","):
            refused = _ref_body("conversations.replies", "missing_scope")
            refused.update(needed="mpim:history", provided=self.scopes)
            return refused
        target = self._find(str(channel), str(ts))
        root = target.get("thread_ts", ts) if target else ts
        thread = [m for m in self._messages.get(str(channel), []) if root in (m.get("ts"), m.get("thread_ts"))]
        if not ts or not thread:
            return "thread_not_found"
        thread.sort(key=lambda m: _ts_key(m["ts"]))
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        if args.get("oldest"):
            oldest = _ts_key(str(args["oldest"]))
            thread = [m for m in thread if _ts_key(m["ts"]) > oldest or (inclusive and _ts_key(m["ts"]) == oldest)]
        if args.get("latest"):
            latest = _ts_key(str(args["latest"]))
            thread = [m for m in thread if _ts_key(m["ts"]) < latest or (inclusive and _ts_key(m["ts"]) == latest)]
        try:
            offset = int(base64.b64decode(str(args["cursor"])).decode().split(":")[1]) if args.get("cursor") else 0
            limit = max(1, int(args.get("limit") or 1000))
            limit = min(limit, self.replies_per_call or limit)
        except (ValueError, IndexError):
            return "invalid_cursor"
        end = offset + limit
        more = end < len(thread)
        cursor = base64.b64encode(f"next_offset:{end}".encode()).decode() if more else ""
        return {
            "ok": True,
            "messages": copy.deepcopy(thread[offset:end]),
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }

    def _api_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if not args.get("channel_id"):
            return "channel_not_found"
        if not args.get("thread_ts"):
            return "invalid_thread_ts"
        if "status" not in args:
            return "invalid_arguments"
        return {"ok": True}

    def _api_assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel, thread_ts, title = args.get("channel_id"), args.get("thread_ts"), args.get("title")
        if not channel or not thread_ts or not title:
            return "invalid_arguments"
        self.thread_titles[(str(channel), str(thread_ts))] = str(title)
        return {"ok": True}

    def _api_assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any] | str:
        prompts = _jsonish(args.get("prompts"))
        if not args.get("channel_id") or not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return "invalid_arguments"
        if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            return "invalid_arguments"
        self.suggested[(str(args["channel_id"]), str(args.get("thread_ts") or ""))] = prompts
        return {"ok": True}

    def _api_agents_sessions_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | str:
        status = str(args.get("status") or "")
        if status not in ("active", "processing", "suspended", "closed"):
            return "invalid_arguments"
        if not self.agent_app:
            return "missing_scope"
        channel, thread_ts = str(args.get("channel_id") or ""), str(args.get("thread_ts") or "")
        if not channel or not thread_ts:
            return "invalid_arguments"
        key = (channel, thread_ts)
        session = self.sessions.get(key)
        if session is None:  # created by the first call: title and initiator count only then
            session = {"title": args.get("title") or "", "initiator": args.get("initiator_user_id")}
            self.sessions[key] = session
        session["status"] = status
        for field_name in ("username", "icon_emoji", "icon_url"):
            if args.get(field_name):
                session[field_name] = args[field_name]
        self.session_log.append((channel, thread_ts, status))
        case = "ok" if self.stop_event_subscribed else "ok_not_subscribed"
        body = _ref_body("agents.sessions.setStatus", case)
        body.update(status=status, agent_status=status, title=session["title"])
        return body

    def _api_agents_sessions_rename(self, args: dict[str, Any]) -> dict[str, Any] | str:
        session = self.sessions.get((str(args.get("channel_id") or ""), str(args.get("thread_ts") or "")))
        if session is None:
            return "session_not_found"
        session["title"] = str(args.get("title") or "")
        return {"ok": True}

    def session_statuses(self, channel: str, thread_ts: str) -> list[str]:
        with self._lock:
            return [status for c, t, status in self.session_log if (c, t) == (channel, thread_ts)]

    def _api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if not args.get("channel"):
            return "channel_not_found"
        if not args.get("user"):
            return "user_not_in_channel"
        self.ephemerals.append({**args, "blocks": _jsonish(args.get("blocks"))})
        return {"ok": True, "message_ts": self._next_ts()}

    def _api_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = str(args.get("channel") or "")
        if not channel:
            return "channel_not_found"
        if channel[:1] in ("C", "G"):
            if not args.get("recipient_user_id"):
                return "missing_recipient_user_id"
            if not args.get("recipient_team_id"):
                return "missing_recipient_team_id"
        text = _chunk_text(args)
        tasks: dict[str, list[dict[str, Any]]] = {}
        if text is None or check_chunks(_jsonish(args.get("chunks")), tasks):
            return "invalid_chunks"
        if args.get("task_display_mode") not in (None, "timeline", "plan"):
            return "invalid_arguments"
        ts = self._next_ts()
        self.stream_tasks[(channel, ts)] = tasks
        msg = {"text": text, "bot_id": self.bot_id, "ts": ts, "type": "message", "subtype": "bot_message"}
        msg["app_id"] = self.app_id
        if args.get("username") and "chat:write.customize" in self.scopes.split(","):
            msg["username"] = args["username"]
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
        self._store(channel, msg)
        self._streaming.add((channel, ts))
        return {"ok": True, "channel": channel, "ts": ts}

    def _stream_target(self, args: dict[str, Any]) -> tuple[dict[str, Any], str] | str:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            return "channel_not_found"
        msg = self._find(channel, ts)
        if msg is None:
            return "message_not_found"
        if (channel, ts) not in self._streaming:
            return "message_not_in_streaming_state"
        text = _chunk_text(args)
        if text is None or check_chunks(_jsonish(args.get("chunks")), self.stream_tasks.setdefault((channel, ts), {})):
            return "invalid_chunks"
        msg["text"] += text
        return msg, channel

    def _api_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        found = self._stream_target(args)
        if isinstance(found, str):
            return found
        return {"ok": True, "channel": found[1], "ts": found[0]["ts"]}

    def _api_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        found = self._stream_target(args)
        if isinstance(found, str):
            return found
        msg, channel = found
        blocks = _jsonish(args.get("blocks"))
        if isinstance(blocks, list):
            msg["blocks"] = blocks
        self._streaming.discard((channel, msg["ts"]))
        keys = ("text", "bot_id", "ts", "type", "subtype")
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": {k: msg[k] for k in keys}}
