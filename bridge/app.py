"""Builds the bridge (store, Letta client, Bolt app, relay) and its HTTP routes; `serve.py` runs it, `clients.py` builds
the Slack and Letta clients."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.response import BoltResponse

from bridge import __version__
from bridge.clients import (
    SharedAgentLocks,
    letta_client,
    look_at_earlier_sends,
    own_letta_client,
    runner_chooser,
    slack_client,
    watch_group_sends_left,
    watching_group_sends,
)
from bridge.config import OAUTH_REDIRECT_PATH, Settings
from bridge.configure import Configurator
from bridge.http import body_too_slow, read_body
from bridge.ids import request_id
from bridge.ingress import PEER_HEADER, is_event_callback
from bridge.letta.appserver_letta import ServerKind
from bridge.letta.client import LettaClient
from bridge.letta.locks import EarlierSends
from bridge.logs import Throttled, log_context
from bridge.metrics import CONTENT_TYPE, Metrics
from bridge.metrics_access import metrics_refusal
from bridge.pruner import Pruner
from bridge.relay import Relay
from bridge.slack.bolt_app import BridgeApp, as_bolt_reads_it
from bridge.slack.delivery_notices import rate_limited_words
from bridge.slack.directory import Directory
from bridge.slack.gate import Gate
from bridge.slack.listeners import register_all
from bridge.slack.live import LiveMessages
from bridge.slack.metered import MeteredSlackClient
from bridge.slack.post import Look, SlackPoster
from bridge.store import Store, StoreError, open_store
from bridge.store.leases import BindingLeases
from bridge.tasks import Tasks
from bridge.turns import TurnWorker

if TYPE_CHECKING:
    from bridge.workspaces import Workspaces

log = logging.getLogger(__name__)
refused = Throttled(log)  # requests refused at the door come in bursts: a line a minute per reason

# Postgres: connections a process opens for agent locks (one per Letta send in flight), whatever
# MAX_CONCURRENT_TURNS says; sends beyond it wait for one. Small plans allow 20 connections in all.
POSTGRES_LOCK_CONNECTIONS = 16


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


class StartError(Exception):
    """The bridge could not start; the message says why and what to do, in one line."""


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
            alive_seconds=settings.turn_lease_seconds,  # a process frozen that long loses its agent locks
        )
        self.letta = letta_client(settings, self.metrics, letta)  # an App Server's: one socket for the process
        self.earlier = EarlierSends()  # learnt from the journal at start
        self.letta.locks = SharedAgentLocks(self.store, self.earlier)
        patience = settings.letta_recovery_wait_seconds
        self.letta.locks.groups_left = watching_group_sends(self.store, self.letta, patience)
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
            self.configurator.default_applies,
        )
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.workspaces: Workspaces | None = None
        self._purger: asyncio.Task[None] | None = None
        self.pruner = Pruner(self.store, settings.finished_turns_days)
        if settings.oauth:
            self._many_workspaces(secret, leases)
        else:
            with _environment_without("SLACK_BOT_TOKEN"):
                self.app = BridgeApp(
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
        self.stopping = False  # set at SIGTERM: /healthz and /readyz answer 503 while what is in flight finishes
        self._unready: str | None = None  # why the last /readyz answered 503, until one answers 200 again
        self.behind_ingress = False  # HTTP requests come through the ingress thread (front.py)

    def _many_workspaces(self, secret: str, leases: BindingLeases) -> None:
        """OAuth mode: Bolt's install flow and per-request authorize over the bridge's own installation store;
        each workspace's turns and commands run with its own token and its own Letta (workspaces.py)."""
        from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

        from bridge.manifest import SCOPES
        from bridge.store.crypto import Cipher, CipherError
        from bridge.store.installations import BridgeInstallationStore
        from bridge.store.oauth_state import BridgeStateStore
        from bridge.workspace_authorize import WorkspaceAuthorize
        from bridge.workspace_install import WorkspaceInstall
        from bridge.workspace_relay import WorkspaceRelay, WorkspaceWorkers
        from bridge.workspaces import Workspaces

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
        workspaces = self.workspaces = Workspaces(s, self.store, installs, self.metrics, self._letta_for, self.earlier)
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
            self.configurator.default_applies,
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
            redirect_uri_path=OAUTH_REDIRECT_PATH,  # the one path it answers; SLACK_REDIRECT_URI must reach it
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
            client=MeteredSlackClient(base_url=s.slack_api_url),
        )
        with _environment_without("SLACK_BOT_TOKEN"):
            self.app = BridgeApp(
                client=self.slack,
                signing_secret=secret,
                process_before_response=True,
                authorize=authorize,
                oauth_flow=WorkspaceInstall(stored=workspaces.reinstalled, client=self.slack, settings=oauth),
            )
        register_all(self.app, self.relay, self.configurator, self.tasks, workspaces)

    async def _letta_for(self, settings: Settings) -> LettaClient:
        """A workspace's own Letta server (the environment's is added first): a REST server or an App Server, found
        out per server (`own_letta_client`), its key the one given to `/letta setup`."""
        return await own_letta_client(settings, self.metrics)

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
        # One pooled session for every Slack call; without it slack_sdk opens a connection per call. Its timeout is
        # slack_sdk's own, which slack_sdk applies only to a session of its own (aiohttp's default is 300 s).
        self.slack.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.slack.timeout))
        self.slack_drafts.session = self.slack.session
        await self.store.open()
        if self.workspaces is not None:
            await self.workspaces.installs.seal_plain_urls()  # an older bridge's, before any turn reads them
            self.workspaces.session = self.slack.session
            self._purger = asyncio.create_task(self._purge_forever())
        await look_at_earlier_sends(self.store, self.earlier)  # before any turn runs
        await watch_group_sends_left(self.store, self.letta, self.settings.letta_recovery_wait_seconds)
        await self.relay.resume()
        self.pruner.start()
        self.ready = True

    async def stop(self) -> None:
        self.stopping = True
        self.ready = False
        grace = self.settings.shutdown_grace_seconds
        graced = asyncio.get_running_loop().time() + grace  # one grace in all: the platform kills at 30 s
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        await self.pruner.stop()
        await asyncio.gather(self.relay.stop(grace), self.tasks.stop(grace))
        await self.tasks.close(max(0.0, graced - asyncio.get_running_loop().time()))  # presses made meanwhile
        # Closing an App Server's socket cancels its turns on the server: the turns had their grace above; what
        # is left of it (commands' lookups may have ended sooner) goes to turns still ending, then the socket
        # closes under them.
        left = max(0.0, graced - asyncio.get_running_loop().time())
        if self.workspaces is not None:
            await self.workspaces.aclose(wait=left)
        else:
            await self.letta.aclose(wait=left)
        if self.slack.session is not None:
            await self.slack.session.close()
        await self.store.close()

    async def handle_slack(self, request: web.Request) -> web.Response:
        with log_context(request_id=request_id()):
            async with self.worker.ack_first.answering():
                return await self._handle_slack(request)

    async def _handle_slack(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.settings.http_body_timeout)
        if body is None:
            return body_too_slow()
        assert self.gate is not None, "HTTP mode needs the signing secret"
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.stopping and self.gate.check(headers, body) is None and is_event_callback(headers, body):
            # A kept-alive connection still brings events while turns finish: refused, Slack delivers it again
            # (to the next process); a button or a command is still answered.
            log.info("slack event refused while stopping, Slack delivers it again status=503")
            busy = web.json_response({"error": "the bridge is stopping"}, status=503)
            busy.force_close()
            return busy
        try:
            refusal = await self.gate.admit(headers, body)  # its signature recorded: the store may fail here
        except Exception as exc:
            # Not answered 200 without its signature on disk: Slack delivers it again. An outage fails them all.
            refused.warning("unrecorded", "slack request not recorded, answered 500 error=%s (%s)",
                            type(exc).__name__, exc)
            return web.json_response({"error": "the request could not be recorded"}, status=500)
        if refusal is not None:
            refused.warning(refusal.reason, "slack request refused status=%s reason=%s", refusal.status, refusal.reason)
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        dropping = rate_limited_words(headers, body)
        if dropping is not None:  # Slack's notice, not an event: no listener would take it
            log.warning(dropping)
            bolt_response = BoltResponse(status=200, body="")
        else:
            try:
                bolt_request = as_bolt_reads_it(await to_bolt_request(request))
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # Signed by Slack but not shaped like any Slack payload: refuse it rather than let Bolt crash.
                kind = type(exc).__name__
                refused.warning(kind, "slack request refused status=400 reason=malformed payload (%s)", kind)
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
        """`ok` (200) once started; `starting` (503) before, `stopping` (503) from SIGTERM on, while it drains."""
        status = "stopping" if self.stopping else "ok" if self.ready else "starting"
        body: dict[str, Any] = {"status": status, "version": __version__}
        return web.json_response(body, status=200 if status == "ok" else 503)

    async def readyz(self, _request: web.Request) -> web.Response:
        """Ready to take Slack's requests: started, not stopping, and the database answers. A platform probes every
        few seconds: a change of readiness is logged once, not each probe."""
        if not self.ready or self.stopping:
            return web.json_response({"status": "not ready"}, status=503)
        problem = await self._database_problem()
        if problem is not None:
            if problem != self._unready:
                log.warning("not ready: %s", problem)
            self._unready = problem
            return web.json_response({"status": "database unavailable"}, status=503)
        if self._unready is not None:
            log.info("ready again: the database answers")
            self._unready = None
        return web.json_response({"status": "ready", "version": __version__})

    async def _database_problem(self) -> str | None:
        """Why the database cannot record a turn now, in words; None when it can."""
        try:
            async with asyncio.timeout(3):
                await self.store.ping()
        except StoreError as exc:
            return str(exc)
        except Exception as exc:
            return f"the database does not answer error={type(exc).__name__}"
        return None

    async def metrics_page(self, request: web.Request) -> web.Response:
        """The app's metrics, to whoever may read them (metrics_access.py)."""
        peer = request.headers.get(PEER_HEADER) if self.behind_ingress else request.remote
        refusal = metrics_refusal(request, self.settings.metrics_token, peer)
        if refusal is not None:
            return refusal
        return web.Response(body=self.metrics.expose(), headers={"Content-Type": CONTENT_TYPE})

    async def oauth_page(self, request: web.Request) -> web.Response:
        """GET /slack/install (the Add to Slack page) and /slack/oauth_redirect (Slack sends the installer back
        here with a code and the state): Bolt's OAuth flow, over the bridge's own stores."""
        flow = self.app.oauth_flow
        assert flow is not None
        with log_context(request_id=request_id()):
            bolt_request = as_bolt_reads_it(await to_bolt_request(request))
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

