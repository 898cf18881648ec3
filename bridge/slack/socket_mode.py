"""Socket Mode: Bolt's handler on slack_sdk's aiohttp client, its connection's failures said in plain words.

slack_sdk retries a connection that fails forever, with a traceback in the log each time (every ping interval):
a first connection that cannot be opened (Slack's WebSocket host unreachable from here, while its Web API
answers) left `socket` neither started nor ended. The client's log is read instead (`ConnectFailures`, a filter
on the logger it is given): the first connection's failure ends `open` with one sentence; a later one (a
reconnection, which the client keeps trying) is one line without the traceback, and the client's next attempt
asks Slack for a fresh URL: it would otherwise try the failed one again forever, though Slack's next URL may name
another of its hosts (wss-primary, wss-backup) and an unused ticket may expire. A token Slack refuses when the
client asks for a new URL ends the run (`serve_until`) instead of being asked again forever. Each envelope is
handled as app.py handles an HTTP request: a request_id for its log lines, turns giving way until it is acked; an
ack the socket closed under is one line (an event was recorded before it: Slack's next delivery is a duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.ids import request_id
from bridge.logs import log_context
from bridge.requirements import SLACK_APP_TOKEN, slack_refused
from bridge.slack.failures import slack_error

# apps.connections.open's answers that fault the app-level token itself; its others say nothing against it.
TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "not_allowed_token_type",
     "missing_scope"}
)
LINK_DISABLED = "link_disabled"  # a `disconnect` message's reason: Socket Mode turned off in the app's settings
SLACK_SIDE = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})

Answering = Callable[[], AbstractAsyncContextManager[None]]  # AckFirst.answering: turns give way meanwhile
PING_SECONDS = 10  # Bolt's: the client pings this often, and waits this long between two connection attempts
# How slack_sdk's client logs a connection attempt that failed (with the exception), before it tries again.
CONNECT_FAILED = "Failed to connect"
# How it logs an ack it could not write (the socket closed), before raising to the bridge's handler, which says it.
SEND_FAILED = "is no longer active. Failed to send a message"


class SocketModeError(Exception):
    """The Socket Mode connection could not be opened; the message says why and what to do, in one line."""


def not_opened(error: str) -> str:
    """Why Slack did not open a Socket Mode connection (apps.connections.open's error), and what to do."""
    if error == "missing_scope":  # the same token copied again cannot help
        return (
            f"Slack refused {SLACK_APP_TOKEN.variable} (missing_scope): it lacks the scope connections:write. "
            "Generate one with that scope in Slack app settings > Basic Information > App-Level Tokens and set it."
        )
    if error in TOKEN_ERRORS:
        return slack_refused(SLACK_APP_TOKEN, error)
    if error == LINK_DISABLED:
        return (
            "Slack closed the Socket Mode connection (link_disabled): Socket Mode was turned off in the app's "
            "settings. Turn it on again (Slack app settings > Socket Mode) and start the bridge again, or serve "
            "HTTP with `python -m bridge serve`."
        )
    if error == "ratelimited":
        return (
            "Slack is limiting how often this app opens Socket Mode connections (ratelimited): wait a minute, "
            "then start the bridge again."
        )
    if error in SLACK_SIDE:
        return (
            f"Slack could not open a Socket Mode connection ({error}, a failure on Slack's side): try again in a "
            "minute; https://slack-status.com says whether Slack is having trouble."
        )
    return (
        f"Slack did not open a Socket Mode connection ({error}): check that Socket Mode is on in the app's "
        "settings (Socket Mode) and that the app is installed in the workspace."
    )


def retry_after(exc: SlackApiError) -> float:
    """The seconds a 429 asks to wait (Retry-After), 30 if it does not say."""
    headers = exc.response.headers if exc.response is not None else {}
    given = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), "30")
    try:
        return max(0.0, float(given))
    except ValueError:
        return 30.0


def why(exc: BaseException) -> str:
    """A failed connection in words, never with its URL (it carries the connection's one-time ticket)."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"the server answered HTTP {exc.status} instead of opening a WebSocket"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"the proxy answered HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the proxy {exc.host}:{exc.port} ({_os_words(exc.os_error)})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_words(exc.os_error)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, SlackApiError):
        return f"Slack answered {slack_error(exc)}"
    return type(exc).__name__


def _os_words(error: OSError) -> str:
    """`connection refused`, `temporary failure in name resolution`: the system's words for it."""
    words = error.strerror if isinstance(error, socket.gaierror) or not error.errno else os.strerror(error.errno)
    words = words or str(error) or type(error).__name__
    return words[:1].lower() + words[1:]


class Client(SocketModeClient):
    """slack_sdk's client, asking Slack for each new URL itself: a rate limit waited out (as slack_sdk does), and a
    token Slack refuses handed to the bridge (`refused`) instead of asked again every few seconds, forever. Each
    connection's opening is bounded by `handshake_seconds`."""

    # slack_sdk's own session waits aiohttp's default 300 s: a host that takes the connection and never answers
    # the upgrade (a middlebox swallowing WebSockets) left `socket` silent for 5 minutes, each reconnection too.
    # aiohttp clears the read timeout once the socket is open, and the total one ends with the handshake.
    handshake_seconds = 30.0

    def __init__(self, app_token: str, logger: logging.Logger, web_client: AsyncWebClient) -> None:
        super().__init__(app_token=app_token, logger=logger, web_client=web_client, ping_interval=PING_SECONDS)
        self.refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def connect(self) -> None:
        """Every attempt, the first and each reconnection, through a session whose handshake is bounded: slack_sdk
        makes one of its own at its start and again when it finds it closed."""
        session = self.aiohttp_client_session
        bounded = aiohttp.ClientTimeout(total=self.handshake_seconds, sock_connect=self.handshake_seconds)
        if not self.closed and (session.closed or session.timeout != bounded):
            self.aiohttp_client_session = aiohttp.ClientSession(timeout=bounded)
            await session.close()
        await super().connect()  # type: ignore[no-untyped-call]

    async def issue_new_wss_url(self) -> str:
        try:
            response = await self.web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error == "ratelimited":
                wait = retry_after(exc)
                self.logger.info("Slack asks to wait before a new Socket Mode connection (rate limit): %g s", wait)
                await asyncio.sleep(wait)
                return await self.issue_new_wss_url()
            if error in TOKEN_ERRORS and not self.refused.done():
                self.refused.set_result(error)
            raise
        return str(response["url"])

    async def run_message_listeners(self, message: dict[str, Any], raw_message: str) -> None:
        """Slack's `disconnect` with reason `link_disabled` means Socket Mode was turned off in the app's settings:
        slack_sdk would ask for a new URL every few seconds, forever, and nothing could arrive. The bridge says so
        and stops instead."""
        if message.get("type") == "disconnect" and message.get("reason") == LINK_DISABLED:
            if not self.refused.done():
                self.refused.set_result(LINK_DISABLED)
            return
        await super().run_message_listeners(message, raw_message)

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        """slack_sdk asks Slack for a new URL here outside its connect loop, and each of its callers (Slack's
        `disconnect`, a closed or stale socket) logs the failure its own way: a traceback, or the SDK's error over
        several lines. One line instead; the client's monitor tries again while the socket is closed."""
        try:
            await super().connect_to_new_endpoint(force)
        except Exception as exc:
            if self.closed:
                return
            self.logger.error("socket mode connection failed, trying again: %s", why(exc))


class Handler(AsyncSocketModeHandler):
    """Bolt's handler (each envelope dispatched to the app, then acknowledged with its answer) on `Client`; each
    envelope handled as app.py handles a request: a request_id on every line logged for it, and turns giving way
    (`answering`) until it is acknowledged."""

    client: Client

    def __init__(self, app: AsyncApp, app_token: str, logger: logging.Logger, answering: Answering) -> None:
        self.app = app
        self.app_token = app_token
        self.client = Client(app_token, logger, app.client)
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]  # as Bolt's own
        self._answering = answering

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        with log_context(request_id=request_id()):
            async with self._answering():
                try:
                    await super().handle(client, req)
                except ConnectionError:  # the ack's write: the socket it came on closed meanwhile
                    self.client.logger.info(
                        "socket mode connection closed before envelope %s was acknowledged: %s",
                        req.envelope_id,
                        "Slack delivers it again" if req.type == "events_api" else "Slack shows the person a failure",
                    )


class ConnectFailures(logging.Filter):
    """Reads the client's log: the first connection's failure is handed to `SocketMode.open` (and nothing more is
    logged, the bridge says it); a later one is logged in one line, without its traceback, and its URL dropped so
    that the client's next attempt asks Slack for a fresh one. Once Slack refuses the token, the bridge says so
    and stops: the client's own words about it are left out."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client
        self.first: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.connected = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.first.done() and not self.connected:
            return False  # the start failed and is being said; the client's closing words would only repeat it
        failure = record.exc_info[1] if record.exc_info else None
        connect_failed = failure is not None and str(record.msg).startswith(CONNECT_FAILED)
        if connect_failed and not self.connected:
            assert failure is not None
            self.first.set_result(failure)
            return False
        if self._client.refused.done() or SEND_FAILED in str(record.msg):
            return False
        if not connect_failed:
            return True
        assert failure is not None
        self._client.wss_uri = None
        record.msg, record.args = "socket mode connection failed, trying again: %s", (why(failure),)
        record.exc_info, record.exc_text = None, None
        return True


def not_debug(record: logging.LogRecord) -> bool:
    """slack_sdk's client logs under the bridge's logger name, so QUIETER does not reach it: at DEBUG it wrote
    every envelope whole (verification token, event text, response_url), every ack and a PONG every 10 s. Its
    debug lines are dropped; its info lines about sessions stay."""
    return record.levelno >= logging.INFO


class SocketMode:
    """The bridge's one Socket Mode connection: opened once (or a sentence says why not), kept open by the client
    (reconnecting when Slack asks or the socket drops), closed on stop."""

    def __init__(self, app: AsyncApp, app_token: str, proxy: str | None, answering: Answering) -> None:
        self._log = logging.getLogger(f"{__name__}.client")
        self.handler = Handler(app, app_token, self._log, answering)
        self._failures = ConnectFailures(self.handler.client)
        self._log.addFilter(self._failures)
        self._log.addFilter(not_debug)
        # Its socket (wss://wss-primary.slack.com) takes the proxy Slack's API takes; slack_sdk's ignores NO_PROXY.
        self.handler.client.proxy = proxy

    async def open(self) -> None:
        """Connect; SocketModeError if the first attempt fails (the client alone would try forever)."""
        connecting = asyncio.ensure_future(self.handler.connect_async())  # type: ignore[no-untyped-call]
        first = self._failures.first
        await asyncio.wait([connecting, first], return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            connecting.result()
            self._failures.connected = True
            return
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        raise SocketModeError(self._cannot_open(first.result()))

    def _cannot_open(self, exc: BaseException) -> str:
        host = urlsplit(self.handler.client.wss_uri or "").netloc or "Slack's WebSocket host"
        if isinstance(exc, SlackApiError):
            return not_opened(slack_error(exc))
        if isinstance(exc, TimeoutError):
            seconds = f"{self.handler.client.handshake_seconds:g}"
            return (
                f"cannot open the Socket Mode connection to {host}: no answer within {seconds} s. Slack's Web API "
                "answered, so a proxy or firewall between here and Slack may let its API through but hold WebSocket "
                f"connections to {host}: check that it lets them through (wss://, port 443)."
            )
        return (
            f"cannot open the Socket Mode connection to {host}: {why(exc)}. Slack's Web API answered, so a proxy "
            f"or firewall between here and Slack may let its API through but not WebSocket connections to {host}."
        )

    async def serve_until(self, stop: Awaitable[object]) -> str | None:
        """Until `stop` (a signal) is done; or until Slack refuses the token at a reconnection: then its sentence
        (nothing can be received any more)."""
        stopping = asyncio.ensure_future(stop)
        refused = self.handler.client.refused
        either: list[asyncio.Future[Any]] = [stopping, refused]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not refused.done():
            return None
        stopping.cancel()
        return not_opened(refused.result())

    async def disconnect(self) -> None:
        """No more envelopes: the socket closes (Slack delivers what was not acknowledged again, elsewhere)."""
        await self.handler.disconnect_async()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self.handler.close_async()  # type: ignore[no-untyped-call]
        self._log.removeFilter(self._failures)
        self._log.removeFilter(not_debug)
