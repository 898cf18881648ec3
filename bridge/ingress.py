"""The HTTP front on a thread and event loop of its own, so that Slack's acknowledgement never waits for turns.

With Letta answering fast, the main loop runs turns flat out, and an acknowledgement made there waits behind
whatever turn work is ready (tens of milliseconds at the tail under a burst). With HTTP_INGRESS=process it runs in
a process of its own (`ingress_process.py`, whose main loop is its line to the bridge), so that it does not wait
for the interpreter lock the turns hold either. Here an Events API request (a
mention, a message: nearly all of Slack's traffic) is checked (`Gate.check`: signature, freshness, shape),
recorded in the inbox with its signature (`inbox.py`: replays refused), answered 200, and handed to the main loop
(`arrivals.py`), which decides and records the turn as it would have before the ack. Every other request (slash
commands, buttons and modals, whose answers carry content; health, readiness, metrics; OAuth pages) is passed on
unchanged to the main app over a Unix socket only this process can reach, with the client's address in
PEER_HEADER.

The thread gives the main one the interpreter lock back every SWITCH_INTERVAL when both want it (Python's
default is 5 ms per hand-over, several per request), so a busy main loop delays an acknowledgement by a fraction
of a millisecond per hand-over rather than by its backlog.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from bridge.config import Settings
from bridge.http import GuardedSite, body_too_slow, limits, read_body
from bridge.ids import request_id
from bridge.inbox import Arrival, Inbox, Replayed
from bridge.logs import Throttled, log_context
from bridge.slack.gate import REPLAY_WINDOW, Refusal

log = logging.getLogger(__name__)
refused = Throttled(log)  # requests refused at the door come in bursts: a line a minute per reason
T = TypeVar("T")

PEER_HEADER = "X-Bridge-Peer"  # the client's address, set by the ingress on every request it passes on
SWITCH_INTERVAL = 0.0001  # seconds a thread may hold the interpreter lock while another waits for it
FLUSH_EVERY = 0.1  # seconds between two batches of handled events removed from the inbox
# Connections to the main app at once (each two files: this end and the main app's); more requests wait for one.
PASS_ON_CONNECTIONS = 32
EVENTS_PATH = "/slack/events"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
     "proxy-authorization", "proxy-authenticate"}
)

Check = Callable[[Mapping[str, str], bytes], Refusal | None]
Deliver = Callable[[Arrival], None]


class IngressError(Exception):
    """The ingress could not start (its port, its inbox): the message says why."""


def is_event_callback(headers: Mapping[str, str], body: bytes) -> bool:
    """An Events API delivery (the body passed the gate's check: one JSON object of a sane depth)."""
    if not headers.get("content-type", "").startswith("application/json"):
        return False
    return bool(json.loads(body).get("type") == "event_callback")


class Batches(Generic[T]):
    """Items one thread passes to another's event loop a batch at a time: one wake-up of that loop per batch, not
    one per item (each is a write to the loop's self-pipe, and a turn of the interpreter lock for both threads)."""

    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._waking = False  # the taker has been woken (or is being) and has not taken yet

    def put(self, item: T) -> bool:
        """Add `item`; True when the caller must wake the taker, which then calls `take`."""
        self._items.append(item)
        if self._waking:
            return False
        self._waking = True
        return True

    def take(self) -> list[T]:
        """Everything put so far, in order. The flag goes first: an item put from now on wakes the taker again."""
        self._waking = False
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items


class Ingress:
    """Started and stopped from the main loop; everything else of it runs on its own thread."""

    def __init__(
        self,
        settings: Settings,
        check: Check,
        inbox: Inbox,
        deliver: Deliver,
        backend: str,
    ) -> None:
        self._settings = settings
        self._check = check
        self._inbox = inbox
        self._deliver = deliver
        self._backend = backend  # the main app's Unix socket
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_listening: asyncio.Event | None = None
        self._close: asyncio.Event | None = None
        self._listening: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._stopped_listening: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._arrived: Batches[Arrival] = Batches()  # to the main loop
        self._reports: Batches[tuple[bool, int]] = Batches()  # (handled, row id), back to this thread's loop
        self._flushing: asyncio.TimerHandle | None = None
        self._previous_interval = sys.getswitchinterval()

    async def start(self) -> int:
        """Open the inbox and listen; the connection cap in force. Events left in the inbox by the last run are
        handed over first."""
        self._main = asyncio.get_running_loop()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=self._run, name="ingress", daemon=True)
        self._thread.start()
        return await asyncio.wrap_future(self._listening)

    async def stop_listening(self) -> None:
        """No new connections or requests; the events recorded so far are still the main loop's to handle."""
        if self._stop_listening is not None and self._signal(self._stop_listening):
            await asyncio.wrap_future(self._stopped_listening)

    async def close(self) -> None:
        """After the main loop has handled (or given up) what it was handed: the last removals written, the
        inbox closed, the thread ended."""
        await self.stop_listening()
        if self._close is not None:
            self._signal(self._close)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        sys.setswitchinterval(self._previous_interval)

    def _signal(self, event: asyncio.Event) -> bool:
        """Set one of the thread's events from the main loop; False when the thread's loop has already ended."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # closed in between
            return False
        return True

    def handled(self, arrival: Arrival) -> None:
        """Called on the main loop: the event is in the store (or was ignored); its row can go."""
        self.report(True, arrival.id)

    def failed(self, arrival: Arrival) -> None:
        """Called on the main loop: an attempt failed; the row stays, with its count of attempts."""
        self.report(False, arrival.id)

    def report(self, handled: bool, row: int) -> None:
        """From the loop that was handed the events: the row `row` handled (removed) or failed (kept, counted)."""
        if not self._reports.put((handled, row)):
            return  # the flush already scheduled takes this one too
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the row stays, and is handed over at the next start
        try:
            loop.call_soon_threadsafe(self._flush_soon)
        except RuntimeError:  # closed in between
            pass

    def _flush_soon(self) -> None:
        if self._flushing is None:
            assert self._loop is not None
            self._flushing = self._loop.call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._flushing = None
        done: list[int] = []
        failed: list[int] = []
        for handled, row in self._reports.take():
            (done if handled else failed).append(row)
        try:
            if done:
                self._inbox.remove(done)
            if failed:
                self._inbox.attempted(failed)
        except Exception as exc:  # the rows stay; handed over again at the next start, and deduplicated there
            log.warning("could not update the events inbox error=%s", type(exc).__name__)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._listening.done():
                self._listening.set_exception(exc)
            else:
                log.error("the ingress thread stopped", exc_info=exc)
        finally:
            if not self._stopped_listening.done():
                self._stopped_listening.set_result(None)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_listening, self._close = asyncio.Event(), asyncio.Event()
        try:
            waiting = self._inbox.open()
        except Exception as exc:
            raise IngressError(f"cannot open the events inbox {self._inbox.path}: {exc}") from None
        s = self._settings
        session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self._backend, limit=PASS_ON_CONNECTIONS, keepalive_timeout=5),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # a cookie the main app sets is its client's, not everyone's
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handler(session))
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=s.http_header_timeout, lingering_time=1.0)
        try:
            await runner.setup()
            cap, backlog = limits(s.http_max_connections, s.http_backlog, reserved=2 * PASS_ON_CONNECTIONS)
            site = GuardedSite(runner, s.host, s.port, cap, backlog=backlog)
            await site.start()
            for arrival in waiting:
                self._hand_over(arrival)
            if waiting:
                log.info("events left in the inbox by the last run handed over count=%d", len(waiting))
            if not self._listening.set_running_or_notify_cancel():
                return  # the start was given up meanwhile (a signal while starting): nobody will send it events
            self._listening.set_result(cap)
            await self._stop_listening.wait()
            await site.stop()
            self._stopped_listening.set_result(None)
            await self._close.wait()
        finally:
            await runner.cleanup()
            await session.close()
            if self._flushing is not None:
                self._flushing.cancel()
            self._flush()
            self._inbox.close()

    def _hand_over(self, arrival: Arrival) -> None:
        if self._arrived.put(arrival):
            assert self._main is not None
            self._main.call_soon_threadsafe(self._deliver_arrived)

    def _deliver_arrived(self) -> None:
        """On the main loop: every event handed over so far, in the order they were recorded."""
        for arrival in self._arrived.take():
            self._deliver(arrival)

    def _handler(self, session: aiohttp.ClientSession) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if self._stop_listening is not None and self._stop_listening.is_set():
                # A kept-alive connection may still bring one after the listener closed: refused, Slack retries it.
                busy = web.json_response({"error": "the bridge is stopping"}, status=503)
                busy.force_close()
                return busy
            body = await read_body(request, self._settings.http_body_timeout)
            if body is None:
                return body_too_slow()
            if request.method == "POST" and request.path == EVENTS_PATH:
                headers = {k.lower(): v for k, v in request.headers.items()}
                with log_context(request_id=request_id()):
                    refusal = self._check(headers, body)
                    if refusal is not None:
                        refused.warning(refusal.reason, "slack request refused status=%s reason=%s", refusal.status,
                                        refusal.reason)
                        return web.json_response({"error": refusal.reason}, status=refusal.status)
                    if is_event_callback(headers, body):
                        return self._event(headers, body)
            return await self._pass_on(request, session, body)  # commands, buttons, url_verification: main's

        return handle

    def _event(self, headers: dict[str, str], body: bytes) -> web.Response:
        expires = int(headers["x-slack-request-timestamp"]) + REPLAY_WINDOW + 1
        try:
            arrival = self._inbox.record(headers["x-slack-signature"], expires, headers, body)
        except Replayed:
            refused.warning("replayed", "slack request refused status=401 reason=replayed request")
            return web.json_response({"error": "replayed request"}, status=401)
        except Exception as exc:
            # Not answered 200 without the event on disk: Slack delivers it again.
            log.warning("slack event not recorded, answered 500 error=%s", type(exc).__name__)
            return web.json_response({"error": "the request could not be recorded"}, status=500)
        self._hand_over(arrival)
        return web.Response(status=200)

    @staticmethod
    def _same_url(request: web.Request) -> URL:
        """The request's path and query exactly as the client sent them: normalised (`/slack/./events`), the
        main app would see the events path this ingress did not, and skip its inbox's replay check."""
        path, _, query = request.raw_path.partition("?")
        return URL.build(scheme="http", host="bridge", path=path, query_string=query, encoded=True)

    async def _pass_on(self, request: web.Request, session: aiohttp.ClientSession, body: bytes) -> web.Response:
        # The body was read decoded, so its Content-Encoding no longer applies.
        dropped = HOP_BY_HOP | {PEER_HEADER.lower(), "content-encoding"}
        headers: CIMultiDict[str] = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in dropped)
        headers[PEER_HEADER] = request.remote or ""
        try:
            async with session.request(
                request.method, self._same_url(request), headers=headers, data=body, allow_redirects=False
            ) as answer:
                content = await answer.read()
                kept = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP)
                return web.Response(status=answer.status, body=content, headers=kept)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("request not passed on to the bridge path=%s error=%s", request.path, type(exc).__name__)
            return web.json_response({"error": "the bridge is not answering"}, status=503)
