"""Builds the bridge (store, Letta client, Bolt app, relay), serves it over HTTP or Socket Mode, stops it cleanly."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bridge import __version__
from bridge.config import Settings
from bridge.configure import Configurator
from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.locks import AgentLocks
from bridge.logs import log_context
from bridge.metrics import CONTENT_TYPE, MeteredLettaClient, MeteredSlackClient, Metrics
from bridge.relay import Relay
from bridge.slack.directory import Directory
from bridge.slack.gate import Gate
from bridge.slack.listeners import register_all
from bridge.slack.live import LiveMessages
from bridge.slack.post import Look, SlackPoster
from bridge.store import Store, open_store
from bridge.store.leases import BindingLeases
from bridge.tasks import Tasks
from bridge.turns import TurnWorker

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


def letta_client(settings: Settings, metrics: Metrics | None = None) -> LettaClient:
    key = settings.letta_api_key.get_secret_value() if settings.letta_api_key else None
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


class Bridge:
    """Owns every long-lived object and the order they start and stop in."""

    def __init__(self, settings: Settings, socket_mode: bool = False) -> None:
        self.settings = settings
        self.socket_mode = socket_mode
        self.metrics = Metrics()
        self.store: Store = open_store(
            settings.database_url,
            pool_size=settings.database_pool_size,
            lock_connections=min(settings.max_concurrent_turns, POSTGRES_LOCK_CONNECTIONS),
        )
        self.letta = letta_client(settings, self.metrics)
        self.letta.locks = SharedAgentLocks(self.store)
        self.slack = slack_client(settings, self.metrics)
        self.chooser = RunnerChooser(
            self.letta,
            settings.letta_group_runner,
            patience=settings.letta_recovery_wait_seconds,
            streaming=settings.letta_streaming,
            tokens=settings.letta_stream_tokens,
            max_turns=settings.letta_max_turns,
        )
        self.configurator = Configurator(settings, self.store, self.letta, self.chooser)
        self.tasks = Tasks()  # command lookups that run after Slack's ack
        looks = {name: Look(**look.model_dump()) for name, look in settings.slack_agents.items()}
        poster = SlackPoster(self.slack, settings.slack_agent_usernames, looks)
        # Drafts of growing replies are skipped, not waited for, when Slack rate-limits them.
        self.slack_drafts = slack_client(settings, self.metrics, wait_out_limits=False)
        live = LiveMessages(self.slack, self.slack_drafts, settings.slack_live_replies)
        worker = TurnWorker(
            settings, self.store, self.chooser, poster, Directory(self.slack), self.configurator.default_binding, live
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
        self.app = AsyncApp(
            client=self.slack,
            signing_secret=secret,
            process_before_response=True,
            request_verification_enabled=not socket_mode,
        )
        register_all(self.app, self.relay, self.configurator, self.tasks)
        # Socket Mode requests are not signed; only HTTP mode has a gate.
        self.gate = Gate(secret) if not socket_mode else None
        self.started_at = time.monotonic()
        self.ready = False

    async def start(self) -> None:
        # One pooled session for every Slack call; without it slack_sdk opens a connection per call.
        self.slack.session = aiohttp.ClientSession()
        self.slack_drafts.session = self.slack.session
        await self.store.open()
        await self.relay.resume()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        grace = self.settings.shutdown_grace_seconds
        await asyncio.gather(self.relay.stop(grace), self.tasks.stop(grace))
        await self.letta.aclose()
        if self.slack.session is not None:
            await self.slack.session.close()
        await self.store.close()

    async def handle_slack(self, request: web.Request) -> web.Response:
        with log_context(request_id=uuid.uuid4().hex[:12]):
            async with self.worker.ack_first.answering():
                return await self._handle_slack(request)

    async def _handle_slack(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert self.gate is not None, "HTTP mode needs the signing secret"
        refusal = self.gate.check({k.lower(): v for k, v in request.headers.items()}, body)
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
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
                refusal = {"error": "GET /metrics needs Authorization: Bearer METRICS_TOKEN"}
                return web.json_response(refusal, status=401)
        return web.Response(body=self.metrics.expose(), headers={"Content-Type": CONTENT_TYPE})

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/slack/events", self.handle_slack)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        return app


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_http(settings: Settings) -> None:
    bridge = Bridge(settings)
    await bridge.start()
    runner = web.AppRunner(bridge.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("bridge listening host=%s port=%s version=%s", settings.host, settings.port, __version__)
    try:
        await _wait_for_signal()
        log.info("stopping: no new requests, finishing turns in flight")
        await site.stop()
    finally:
        await bridge.stop()
        await runner.cleanup()
    log.info("bridge stopped")


async def serve_socket(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    bridge = Bridge(settings, socket_mode=True)
    await bridge.start()
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bridge.app, settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("bridge connected over Socket Mode version=%s", __version__)
    try:
        await _wait_for_signal()
        log.info("stopping: closing the Socket Mode connection, finishing turns in flight")
        await handler.disconnect_async()  # type: ignore[no-untyped-call]
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await bridge.stop()
    log.info("bridge stopped")
