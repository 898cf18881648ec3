"""`serve` and `socket`: start the bridge, listen (HTTP, behind the events ingress on SQLite, or Socket Mode), wait
for SIGTERM or SIGINT, and stop it cleanly; a start that cannot succeed ends in one plain StartError line."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from slack_sdk.errors import SlackApiError

from bridge import __version__
from bridge.app import Bridge, StartError
from bridge.clients import slack_client
from bridge.config import Settings
from bridge.config_file import config_readable_by_others
from bridge.front import ARRIVALS_GRACE, Front, FrontError
from bridge.http import GuardedSite, cannot_listen, limits
from bridge.ingress_process import IngressProcess, behind_ingress
from bridge.kind_watch import kind_at_start, kind_watched, told_at_start
from bridge.left_inbox import LeftInbox
from bridge.proxies import proxy_for
from bridge.requirements import SLACK_BOT_TOKEN, slack_refused, token_refused
from bridge.slack.failures import FAILURES, slack_error
from bridge.store import StoreError
from bridge.store.database_url import database_name, missing_sqlite_file

log = logging.getLogger(__name__)

RATE_LIMITED_TRIES = 3  # apps.connections.open answered 429 twice is waited out; a third time ends the start


class Signals:
    """SIGTERM and SIGINT from the moment `serve` or `socket` runs. Until the bridge serves, a signal cancels the
    start wherever it is (the Letta check, the database and its migrations, Slack, the port: a PaaS restart may
    come mid-boot), and what was started is stopped on the way out; from then on it only sets `stop`, and the
    bridge drains."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.serving = False
        self.cut_short: str | None = None  # the signal that cancelled the start
        self._start = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        self.stop.set()
        if not self.serving and self.cut_short is None and self._start is not None:
            self.cut_short = sig.name
            self._start.cancel()


async def _stoppable(serve: Callable[[Settings, Signals], Awaitable[None]], settings: Settings) -> None:
    """Run `serve`; a signal that cancelled its start is a stop like any other (one line, nothing raised)."""
    signals = Signals()
    try:
        await serve(settings, signals)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if signals.cut_short is None or task is None or task.uncancel() > 0:
            raise
        log.info("bridge stopped before it had started (%s)", signals.cut_short)


@asynccontextmanager
async def _started(bridge: Bridge) -> AsyncIterator[None]:
    """Start the bridge, and stop whatever was started however the body ends: a start that fails half-way leaves
    no session, pool or database thread behind to keep the process alive. A failure to start that is not already
    a plain StartError or StoreError becomes one line (the traceback only at DEBUG)."""
    try:
        try:
            await bridge.start()
            settle_the_heap()
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


def _warn_of_an_ephemeral_disk(settings: Settings) -> None:
    """SQLite on a host that wipes its disk at each deploy: `check` says so, but a PaaS runs `serve` only, so its
    log says it too, at every start."""
    if settings.database_url.startswith("sqlite:"):
        from bridge.checks_database import ephemeral_sqlite  # `check`'s module, loaded only here

        for found in ephemeral_sqlite(dict(os.environ)):
            log.warning(found.detail)
    if (loose := config_readable_by_others()) is not None:
        log.warning(loose)


def settle_the_heap() -> None:
    """Everything built to start (modules, the app, its clients) is kept for the process's life: collected once,
    then set aside from the collector's full passes (`gc.freeze`). A full pass otherwise walks all of it again,
    with the interpreter lock held: measured under a burst, 36 ms at the median (62 at most) every few seconds,
    and every thread, the acknowledging one too, waited it out; 4 ms once set aside."""
    gc.collect()
    gc.freeze()


async def _say_if_slack_refuses_the_bot_token(settings: Settings) -> None:
    """A bot token Slack refuses does not stop a start (it may be renewed in Slack any moment), but every event
    would then fail with only Bolt's "Failed to authorize" in the log: one auth.test once the bridge serves says it
    in the operator's words. Slack out of reach or in trouble is no token's fault, and is left to the turns."""
    if settings.oauth or settings.slack_bot_token is None:
        return
    try:
        await slack_client(settings).auth_test()
    except SlackApiError as exc:
        error = slack_error(exc)
        if token_refused(error):
            refused = slack_refused(SLACK_BOT_TOKEN, error)
            log.error("%s Until then no event can be answered; `python -m bridge check` checks it.", refused)
    except FAILURES:
        return


@asynccontextmanager
async def _token_heard(settings: Settings) -> AsyncIterator[None]:
    """`_say_if_slack_refuses_the_bot_token` beside the serving bridge, never outliving it."""
    task = asyncio.create_task(_say_if_slack_refuses_the_bot_token(settings))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _database_words(settings: Settings, new: bool) -> str:
    name = database_name(settings.database_url)
    return f"{name} (new: no channels are connected in it yet)" if new else name


async def serve_http(settings: Settings, ingress: IngressProcess | None = None) -> None:
    """`ingress`: the ingress process `serve` forked (HTTP_INGRESS=process), which then listens for it."""

    async def serve(settings: Settings, signals: Signals) -> None:
        await _serve_http(settings, signals, ingress)

    await _stoppable(serve, settings)


async def _serve_http(settings: Settings, signals: Signals, ingress: IngressProcess | None) -> None:
    new = missing_sqlite_file(settings.database_url) is not None
    told = await told_at_start(settings)
    bridge = Bridge(settings, letta=kind_at_start(told))
    runner = web.AppRunner(
        bridge.web_app(),
        access_log=None,
        keepalive_timeout=settings.http_header_timeout,  # also closes a connection whose request head lags
        lingering_time=1.0,  # a refused request's unread body is not waited for long
    )
    front, left = None, None
    if behind_ingress(settings):
        assert bridge.gate is not None
        front = Front(settings, bridge.gate.check, bridge.app.async_dispatch, ingress, bridge.store.ping)
        bridge.behind_ingress = True
    if ingress is not None:
        ingress.on_lost = signals.stop.set  # a bridge whose events nobody answers stops, to be started again
    try:
        async with _started(bridge):
            _warn_of_an_ephemeral_disk(settings)
            await runner.setup()
            if front is not None:
                try:
                    cap = await front.start(runner)
                except FrontError as exc:
                    raise StartError(str(exc)) from None
            else:
                left = LeftInbox(settings, bridge.app.async_dispatch, bridge.store.ping)
                await left.start()
                cap, backlog = limits(settings.http_max_connections, settings.http_backlog)
                site: web.BaseSite = GuardedSite(runner, settings.host, settings.port, cap, backlog=backlog)
                try:
                    await site.start()
                except OSError as exc:
                    raise StartError(cannot_listen(settings.host, settings.port, exc)) from None
            signals.serving = True
            log.info(
                "bridge listening host=%s port=%s version=%s database=%s max_connections=%d events_inbox=%s",
                settings.host,
                settings.port,
                __version__,
                _database_words(settings, new),
                cap,
                "on" if front is not None else "off",
            )
            if settings.http_ingress == "process" and front is None:  # said, not silently not done
                log.warning(
                    "HTTP_INGRESS=process has no effect here: the ingress process serves SQLite with the events "
                    "inbox on; with %s events are acknowledged on the main loop",
                    "HTTP_EVENTS_INBOX=false" if settings.database_url.startswith("sqlite:") else "PostgreSQL",
                )
            if settings.metrics_token is None:
                log.info("GET /metrics answers loopback clients only; set METRICS_TOKEN to scrape it from elsewhere")
            async with _token_heard(settings), kind_watched(settings, told, signals.stop) as watch:
                await signals.stop.wait()
            bridge.stopping = True  # /healthz says so before the ingress or the site stops listening
            log.info("stopping: no new requests, finishing turns in flight")
            if front is not None:
                await front.stop(settings.shutdown_grace_seconds)
            else:
                await site.stop()
                if left is not None:  # the events it handed over made turns before the turns' grace begins
                    await left.stop(ARRIVALS_GRACE)
    finally:
        if front is not None:
            await front.close()
        if left is not None:
            await left.stop(0)
        await runner.cleanup()
    if ingress is not None and ingress.lost_why:
        raise StartError(f"{ingress.lost_why}; the bridge stopped")
    if watch.why:
        raise StartError(watch.why)
    log.info("bridge stopped")


async def _socket_mode_allowed(settings: Settings, app_token: str) -> None:
    """apps.connections.open asked once before anything starts: the Socket Mode client would retry a refused token
    forever. A rate limit (a Tier 1 method: a bridge started again and again) is waited out as Slack asks."""
    from bridge.checks import slack_unreachable
    from bridge.slack.socket_mode import not_opened, retry_after

    client = slack_client(settings, wait_out_limits=False)
    for attempt in range(RATE_LIMITED_TRIES):
        try:
            await client.apps_connections_open(app_token=app_token)
            return
        except SlackApiError as exc:
            error = slack_error(exc)
            if error != "ratelimited" or attempt == RATE_LIMITED_TRIES - 1:
                raise StartError(not_opened(error)) from None
            wait = retry_after(exc)
            log.info("Slack asks to wait before the Socket Mode connection opens (rate limit): waiting %g s", wait)
            await asyncio.sleep(wait)
        except FAILURES as exc:
            raise StartError(slack_unreachable(settings, exc)) from None


async def serve_socket(settings: Settings) -> None:
    await _stoppable(_serve_socket, settings)


async def _serve_socket(settings: Settings, signals: Signals) -> None:
    from bridge.slack.socket_mode import SocketMode, SocketModeError

    if settings.oauth:
        raise StartError(
            "Slack's OAuth install needs the bridge reachable over HTTPS: run `serve` (SLACK_CLIENT_ID is set), "
            "or unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to use Socket Mode with one bot token."
        )
    new = missing_sqlite_file(settings.database_url) is not None
    assert settings.slack_app_token is not None
    app_token = settings.slack_app_token.get_secret_value()
    await _socket_mode_allowed(settings, app_token)
    told = await told_at_start(settings)
    bridge = Bridge(settings, socket_mode=True, letta=kind_at_start(told))
    async with _started(bridge):
        _warn_of_an_ephemeral_disk(settings)
        left = LeftInbox(settings, bridge.app.async_dispatch, bridge.store.ping)
        connection = SocketMode(
            bridge.app, app_token, proxy_for(settings.slack_api_url), bridge.worker.ack_first.answering
        )
        try:
            await left.start()  # before the connection: what was acknowledged first is handed to Bolt first
            try:
                await connection.open()
            except SocketModeError as exc:
                raise StartError(str(exc)) from None
            signals.serving = True
            log.info(
                "bridge connected over Socket Mode version=%s database=%s",
                __version__,
                _database_words(settings, new),
            )
            async with _token_heard(settings), kind_watched(settings, told, signals.stop) as watch:
                refused = await connection.serve_until(signals.stop.wait())
            if refused is not None:
                log.warning("stopping: Slack will not keep the Socket Mode connection open, finishing turns in flight")
            else:
                log.info("stopping: closing the Socket Mode connection, finishing turns in flight")
            await connection.disconnect()
        finally:
            await left.stop(ARRIVALS_GRACE)
            await connection.close()
        if refused is not None or watch.why:
            raise StartError(refused or watch.why)  # after the turns in flight: `_started` stops the bridge
    log.info("bridge stopped")
