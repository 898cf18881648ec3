"""Builds the bridge (store, Letta client, Bolt app, relay), serves it over HTTP or Socket Mode, stops it cleanly."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bridge import __version__
from bridge.config import Settings
from bridge.configure import Configurator
from bridge.front import Front, FrontError, warn_of_a_waiting_inbox
from bridge.http import GuardedSite, body_too_slow, cannot_listen, limits, read_body
from bridge.ingress import PEER_HEADER
from bridge.letta.appserver_letta import AppServerLetta, ServerKind, kind_by_scheme, server_kind
from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.locks import AgentLocks
from bridge.letta.metered import MeteredLettaClient
from bridge.logs import log_context
from bridge.metrics import CONTENT_TYPE, Metrics
from bridge.relay import Relay
from bridge.requirements import SLACK_APP_TOKEN, slack_refused
from bridge.slack.directory import Directory
from bridge.slack.gate import Gate
from bridge.slack.listeners import register_all
from bridge.slack.live import LiveMessages
from bridge.slack.metered import MeteredSlackClient
from bridge.slack.post import FAILURES, Look, SlackPoster, slack_error
from bridge.store import Store, StoreError, open_store
from bridge.store.base import database_name, missing_sqlite_file
from bridge.store.leases import BindingLeases
from bridge.tasks import Tasks
from bridge.turns import TurnWorker

if TYPE_CHECKING:
    from bridge.workspaces import Workspaces

log = logging.getLogger(__name__)

# Postgres: connections a process opens for agent locks (one per Letta send in flight), whatever
# MAX_CONCURRENT_TURNS says; sends beyond it wait for one. Small plans allow 20 connections in all.
POSTGRES_LOCK_CONNECTIONS = 16


def slack_client(settings: Settings, metrics: Metrics | None = None, wait_out_limits: bool = True) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = MeteredSlackClient(token=token, base_url=settings.slack_api_url)
    if metrics is not None:
        client.metrics = metrics
    if wait_out_limits:
        # 429 means Slack did not process the call, so retrying after Retry-After is safe.
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


def letta_client(settings: Settings, metrics: Metrics | None = None, kind: ServerKind | None = None) -> LettaClient:
    """The client for LETTA_BASE_URL: a Letta App Server's (ws://, wss://, or `kind` as `letta_kind` found it) or
    a REST server's."""
    key = settings.letta_api_key.get_secret_value() if settings.letta_api_key else None
    if (kind or kind_by_scheme(settings.letta_base_url)) == "app-server":
        return AppServerLetta(
            settings.letta_base_url,
            api_key=key,
            metrics=metrics,
            connect_timeout=settings.letta_connect_timeout,
            request_timeout=min(settings.letta_read_timeout, 30.0),
        )
    client = MeteredLettaClient(
        settings.letta_base_url,
        api_key=key,
        project=settings.letta_project,
        connect_timeout=settings.letta_connect_timeout,
        read_timeout=settings.letta_read_timeout,
        send_retries=settings.letta_send_retries,
        max_connections=max(100, 2 * settings.max_concurrent_turns),
        retry_base=settings.letta_retry_base_seconds,
        busy_wait=settings.letta_busy_wait_seconds,
    )
    if metrics is not None:
        client.metrics = metrics
    return client


def runner_chooser(settings: Settings, client: LettaClient) -> RunnerChooser:
    """The runners for one Letta server, as the settings ask (the environment's server, or a workspace's)."""
    return RunnerChooser(
        client,
        settings.letta_group_runner,
        patience=settings.letta_recovery_wait_seconds,
        streaming=settings.letta_streaming,
        tokens=settings.letta_stream_tokens,
        max_turns=settings.letta_max_turns,
        app_server_deadline=settings.turn_deadline_seconds,
    )


async def letta_kind(settings: Settings) -> ServerKind:
    """Which kind of Letta server LETTA_BASE_URL is: by its scheme, else by asking `GET /app-server-info`."""
    key = settings.letta_api_key.get_secret_value() if settings.letta_api_key else None
    return await server_kind(settings.letta_base_url, key, within=settings.letta_connect_timeout)


class SharedAgentLocks(AgentLocks):
    """The Letta client's in-process locks, then the store's: on Postgres, advisory locks that keep each agent
    to one send in flight across every process sharing the database."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        ids = sorted(set(agent_ids))
        async with super().hold(ids), self._store.agent_lock(ids):
            yield


@contextmanager
def _environment_without(name: str) -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself, and warns that it will not use it when it is
    given a client too (it uses the client's token). The bridge gives it the client it built from the settings, so
    Bolt is built with the variable out of its sight; it is back as soon as the app exists."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


class Bridge:
    """Owns every long-lived object and the order they start and stop in."""

    def __init__(self, settings: Settings, socket_mode: bool = False, letta: ServerKind | None = None) -> None:
        self.settings = settings
        self.socket_mode = socket_mode
        self.metrics = Metrics()
        self.store: Store = open_store(
            settings.database_url,
            pool_size=settings.database_pool_size,
            lock_connections=min(settings.max_concurrent_turns, POSTGRES_LOCK_CONNECTIONS),
            serving=True,
        )
        self.letta = letta_client(settings, self.metrics, letta)  # an App Server's: one socket for the process
        self.letta.locks = SharedAgentLocks(self.store)
        self.slack = slack_client(settings, self.metrics)
        self.chooser = runner_chooser(settings, self.letta)
        self.configurator = Configurator(settings, self.store, self.letta, self.chooser)
        self.tasks = Tasks()  # command lookups that run after Slack's ack
        looks = {name: Look(**look.model_dump()) for name, look in settings.slack_agents.items()}
        poster = SlackPoster(self.slack, settings.slack_agent_usernames, looks)
        # Drafts of growing replies and thread reads are skipped, not waited for, when Slack rate-limits them.
        self.slack_drafts = slack_client(settings, self.metrics, wait_out_limits=False)
        live = LiveMessages(self.slack, self.slack_drafts, settings.slack_live_replies, settings.slack_task_display)
        worker = TurnWorker(
            settings,
            self.store,
            self.chooser,
            poster,
            Directory(self.slack, reads=self.slack_drafts),
            self.configurator.default_binding,
            live,
        )
        worker.metrics = self.metrics
        self.worker = worker
        leases = BindingLeases(self.store, settings.turn_lease_seconds)
        self.relay = Relay(
            self.store,
            worker,
            poster,
            settings.max_concurrent_turns,
            frozenset(settings.slack_thread_follow_ups_except),
            leases,
            self.metrics,
        )
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.workspaces: Workspaces | None = None
        self._purger: asyncio.Task[None] | None = None
        if settings.oauth:
            self._many_workspaces(secret, leases)
        else:
            with _environment_without("SLACK_BOT_TOKEN"):
                self.app = AsyncApp(
                    client=self.slack,
                    signing_secret=secret,
                    process_before_response=True,
                    request_verification_enabled=not socket_mode,
                )
            register_all(self.app, self.relay, self.configurator, self.tasks)
        # Socket Mode requests are not signed; only HTTP mode has a gate.
        hosts = settings.slack_response_url_hosts
        self.gate = Gate(secret, self.store.first_signature, hosts) if not socket_mode else None
        self.started_at = time.monotonic()
        self.ready = False
        self.behind_ingress = False  # HTTP requests come through the ingress thread (front.py)

    def _many_workspaces(self, secret: str, leases: BindingLeases) -> None:
        """OAuth mode: Bolt's install flow and per-request authorize over the bridge's own installation store;
        each workspace's turns and commands run with its own token and its own Letta (workspaces.py)."""
        from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
        from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

        from bridge.manifest import SCOPES
        from bridge.store.crypto import Cipher, CipherError
        from bridge.store.installations import BridgeInstallationStore, BridgeStateStore
        from bridge.workspaces import WorkspaceAuthorize, WorkspaceRelay, Workspaces, WorkspaceWorkers

        s = self.settings
        assert s.slack_client_id is not None and s.slack_client_secret is not None
        if s.bridge_encryption_key is None:
            raise StartError("OAuth mode needs BRIDGE_ENCRYPTION_KEY to store each workspace's bot token encrypted.")
        try:
            cipher = Cipher(s.bridge_encryption_key.get_secret_value())
        except CipherError as exc:
            raise StartError(str(exc)) from None
        days = None if s.uninstalled_bindings == "keep" else s.uninstalled_bindings_days
        installs = BridgeInstallationStore(self.store, cipher, purge_days=days)
        workspaces = self.workspaces = Workspaces(s, self.store, installs, self.metrics, self._letta_for)
        default = workspaces.letta.add(s, self.letta)  # the environment's server: every workspace's default
        self.letta, self.chooser = default.client, default.chooser
        self.configurator = Configurator(s, self.store, self.letta, self.chooser)
        relay = WorkspaceRelay(
            self.store,
            WorkspaceWorkers(workspaces),
            SlackPoster(self.slack),
            s.max_concurrent_turns,
            frozenset(s.slack_thread_follow_ups_except),
            leases,
            self.metrics,
        )
        relay.workspaces = workspaces
        self.relay = relay
        state_secret = s.slack_state_secret.get_secret_value() if s.slack_state_secret else None
        client_secret = s.slack_client_secret.get_secret_value()
        oauth = AsyncOAuthSettings(
            client_id=s.slack_client_id,
            client_secret=client_secret,
            scopes=[scope.name for scope in SCOPES],
            user_scopes=[],
            redirect_uri=s.slack_redirect_uri,
            authorization_url=s.slack_oauth_authorize_url,
            installation_store=installs,
            state_store=BridgeStateStore(installs, state_secret),
            token_rotation_expiration_minutes=s.slack_token_rotation_minutes,
            logger=log,
        )
        authorize = WorkspaceAuthorize(
            workspaces,
            logger=log,
            installation_store=installs,
            client_id=s.slack_client_id,
            client_secret=client_secret,
            token_rotation_expiration_minutes=s.slack_token_rotation_minutes,
            client=AsyncWebClient(base_url=s.slack_api_url),
        )
        with _environment_without("SLACK_BOT_TOKEN"):
            self.app = AsyncApp(
                client=self.slack,
                signing_secret=secret,
                process_before_response=True,
                authorize=authorize,
                oauth_flow=AsyncOAuthFlow(client=self.slack, settings=oauth),
            )
        register_all(self.app, self.relay, self.configurator, self.tasks, workspaces)

    async def _letta_for(self, settings: Settings) -> LettaClient:
        """A workspace's own Letta server: a REST server or an App Server, found out per server (`letta_kind`)."""
        return letta_client(settings, self.metrics, await letta_kind(settings))

    async def _purge_forever(self) -> None:
        """Bindings of workspaces that removed the app go once their time is up (UNINSTALLED_BINDINGS_DAYS)."""
        assert self.workspaces is not None
        while True:
            try:
                await self.workspaces.purge()
            except Exception as exc:
                log.warning("could not delete the bindings of removed workspaces error=%s", type(exc).__name__)
            await asyncio.sleep(3600)

    async def start(self) -> None:
        # One pooled session for every Slack call; without it slack_sdk opens a connection per call.
        self.slack.session = aiohttp.ClientSession()
        self.slack_drafts.session = self.slack.session
        await self.store.open()
        if self.workspaces is not None:
            self.workspaces.session = self.slack.session
            self._purger = asyncio.create_task(self._purge_forever())
        await self.relay.resume()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        grace = self.settings.shutdown_grace_seconds
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        await asyncio.gather(self.relay.stop(grace), self.tasks.stop(grace))
        # Closing an App Server's socket cancels its turns on the server: the turns had their grace above; any
        # still running get it once more here, then the socket closes under them.
        if self.workspaces is not None:
            await self.workspaces.aclose(wait=grace)
        else:
            await self.letta.aclose(wait=grace)
        if self.slack.session is not None:
            await self.slack.session.close()
        await self.store.close()

    async def handle_slack(self, request: web.Request) -> web.Response:
        with log_context(request_id=uuid.uuid4().hex[:12]):
            async with self.worker.ack_first.answering():
                return await self._handle_slack(request)

    async def _handle_slack(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.settings.http_body_timeout)
        if body is None:
            return body_too_slow()
        assert self.gate is not None, "HTTP mode needs the signing secret"
        refusal = await self.gate.admit({k.lower(): v for k, v in request.headers.items()}, body)
        if refusal is not None:
            log.warning("slack request refused status=%s reason=%s", refusal.status, refusal.reason)
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        try:
            bolt_request = await to_bolt_request(request)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # Signed by Slack but not shaped like any Slack payload: refuse it rather than let Bolt crash.
            log.warning("slack request refused status=400 reason=malformed payload (%s)", type(exc).__name__)
            return web.json_response({"error": "malformed payload"}, status=400)
        bolt_response = await self.app.async_dispatch(bolt_request)
        try:
            await self.store.record_signatures()  # a mention's was written with its turn; anything else's now
        except StoreError as exc:
            # Not answered 200 without its signature on disk: Slack delivers it again.
            log.warning("slack request not recorded, answered 500 error=%s", exc)
            return web.json_response({"error": "the request could not be recorded"}, status=500)
        return await to_aiohttp_response(bolt_response)

    async def healthz(self, _request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok" if self.ready else "starting", "version": __version__}
        return web.json_response(body, status=200 if self.ready else 503)

    async def readyz(self, _request: web.Request) -> web.Response:
        """Ready to take Slack's requests: started, not stopping, and the database answers."""
        if not self.ready:
            return web.json_response({"status": "not ready"}, status=503)
        try:
            async with asyncio.timeout(3):
                await self.store.ping()
        except Exception as exc:
            log.warning("not ready: the database does not answer error=%s", type(exc).__name__)
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ready", "version": __version__})

    async def metrics_page(self, request: web.Request) -> web.Response:
        token = self.settings.metrics_token
        peer = request.headers.get(PEER_HEADER) if self.behind_ingress else request.remote
        if token is None and not _loopback(peer):
            # Without METRICS_TOKEN the page is for this host only (a sidecar, a local scraper).
            return web.json_response({"error": "GET /metrics is served on loopback only unless METRICS_TOKEN is set"},
                                     status=403)
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
                refusal = {"error": "GET /metrics needs Authorization: Bearer METRICS_TOKEN"}
                return web.json_response(refusal, status=401)
        return web.Response(body=self.metrics.expose(), headers={"Content-Type": CONTENT_TYPE})

    async def oauth_page(self, request: web.Request) -> web.Response:
        """GET /slack/install (the Add to Slack page) and /slack/oauth_redirect (Slack sends the installer back
        here with a code and the state): Bolt's OAuth flow, over the bridge's own stores."""
        flow = self.app.oauth_flow
        assert flow is not None
        with log_context(request_id=uuid.uuid4().hex[:12]):
            bolt_request = await to_bolt_request(request)
            if request.path == flow.install_path:
                response = await flow.handle_installation(bolt_request)
            else:
                response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(response)

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        flow = self.app.oauth_flow
        if self.workspaces is not None and flow is not None:
            app.router.add_get(flow.install_path, self.oauth_page)
            app.router.add_get(flow.redirect_uri_path, self.oauth_page)
        app.router.add_post("/slack/events", self.handle_slack)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        return app


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class StartError(Exception):
    """The bridge could not start; the message says why and what to do, in one line."""


@asynccontextmanager
async def _started(bridge: Bridge) -> AsyncIterator[None]:
    """Start the bridge, and stop whatever was started however the body ends: a start that fails half-way leaves
    no session, pool or database thread behind to keep the process alive. A failure to start that is not already
    a plain StartError or StoreError becomes one line (the traceback only at DEBUG)."""
    try:
        try:
            await bridge.start()
            yield
        except (StartError, StoreError):
            raise
        except Exception as exc:
            if bridge.ready:
                raise
            log.debug("start failed", exc_info=True)
            raise StartError(f"the bridge could not start: {type(exc).__name__}: {exc}") from None
    finally:
        await bridge.stop()


def _database_words(settings: Settings, new: bool) -> str:
    name = database_name(settings.database_url)
    return f"{name} (new: no channels are connected in it yet)" if new else name


async def serve_http(settings: Settings) -> None:
    new = missing_sqlite_file(settings.database_url) is not None
    bridge = Bridge(settings, letta=await letta_kind(settings))
    runner = web.AppRunner(
        bridge.web_app(),
        access_log=None,
        keepalive_timeout=settings.http_header_timeout,  # also closes a connection whose request head lags
        lingering_time=1.0,  # a refused request's unread body is not waited for long
    )
    front = None
    if settings.http_events_inbox and settings.database_url.startswith("sqlite:"):
        assert bridge.gate is not None
        front = Front(settings, bridge.gate.check, bridge.app.async_dispatch)
        bridge.behind_ingress = True
    try:
        async with _started(bridge):
            await runner.setup()
            if front is not None:
                try:
                    cap = await front.start(runner)
                except FrontError as exc:
                    raise StartError(str(exc)) from None
            else:
                await warn_of_a_waiting_inbox(settings)
                cap, backlog = limits(settings.http_max_connections, settings.http_backlog)
                site: web.BaseSite = GuardedSite(runner, settings.host, settings.port, cap, backlog=backlog)
                try:
                    await site.start()
                except OSError as exc:
                    raise StartError(cannot_listen(settings.host, settings.port, exc)) from None
            log.info(
                "bridge listening host=%s port=%s version=%s database=%s max_connections=%d events_inbox=%s",
                settings.host,
                settings.port,
                __version__,
                _database_words(settings, new),
                cap,
                "on" if front is not None else "off",
            )
            if settings.metrics_token is None:
                log.info("GET /metrics answers loopback clients only; set METRICS_TOKEN to scrape it from elsewhere")
            await _wait_for_signal()
            log.info("stopping: no new requests, finishing turns in flight")
            if front is not None:
                await front.stop(settings.shutdown_grace_seconds)
            else:
                await site.stop()
    finally:
        if front is not None:
            await front.close()
        await runner.cleanup()
    log.info("bridge stopped")


async def serve_socket(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    if settings.oauth:
        raise StartError(
            "Slack's OAuth install needs the bridge reachable over HTTPS: run `serve` (SLACK_CLIENT_ID is set), "
            "or unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to use Socket Mode with one bot token."
        )
    new = missing_sqlite_file(settings.database_url) is not None
    assert settings.slack_app_token is not None
    app_token = settings.slack_app_token.get_secret_value()
    try:
        # Asked once first: the Socket Mode client would retry a refused token forever, a traceback each time.
        await slack_client(settings, wait_out_limits=False).apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        raise StartError(slack_refused(SLACK_APP_TOKEN, slack_error(exc))) from None
    except FAILURES as exc:
        raise StartError(f"cannot reach Slack at {settings.slack_api_url}: {slack_error(exc)}.") from None
    bridge = Bridge(settings, socket_mode=True, letta=await letta_kind(settings))
    async with _started(bridge):
        handler = AsyncSocketModeHandler(bridge.app, app_token)
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info(
                "bridge connected over Socket Mode version=%s database=%s",
                __version__,
                _database_words(settings, new),
            )
            await _wait_for_signal()
            log.info("stopping: closing the Socket Mode connection, finishing turns in flight")
            await handler.disconnect_async()  # type: ignore[no-untyped-call]
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
    log.info("bridge stopped")
