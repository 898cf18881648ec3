"""The HTTP front in a process of its own, so that Slack's acknowledgement never waits for turns.

With Letta answering fast, the main process runs turns flat out, and an acknowledgement made there waits behind
whatever turn work is ready (tens of milliseconds at the tail under a burst); a thread of its own still shares
the interpreter lock with the turns. So `serve` on SQLite forks, before its event loop and its threads exist, a
process that owns HOST:PORT. There an Events API request (a mention, a message: nearly all of Slack's traffic)
is checked (`Gate.check`: signature, freshness, shape), recorded in the inbox with its signature (`inbox.py`:
replays refused), answered 200, and sent to the main process (`front.py`), which decides and records the turn as
it would have before the ack. Every other request (slash commands, buttons and modals, whose answers carry
content; health, readiness, metrics; OAuth pages) is passed on unchanged to the main app over a Unix socket only
this user can reach, with the client's address in PEER_HEADER.

The two speak one JSON object a line over a socket pair (`send`, `receive`). The main process says `ready` once
it holds the database (so a second bridge on the same file never touches its inbox), then `done`/`failed` per
event, then `stop` (no new requests) and `close`. The ingress ignores SIGTERM and SIGINT, which a PaaS or a
terminal sends to both processes: the main process decides when it stops. When the main process goes, however
it goes, the socket pair reads end-of-file and the ingress exits, freeing the port.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from bridge.config import Settings
from bridge.http import GuardedSite, body_too_slow, limits, read_body
from bridge.inbox import Inbox, Replayed
from bridge.logs import log_context
from bridge.slack.gate import REPLAY_WINDOW, Gate

log = logging.getLogger(__name__)

PEER_HEADER = "X-Bridge-Peer"  # the client's address, set by the ingress on every request it passes on
FLUSH_EVERY = 0.1  # seconds between two batches of handled events removed from the inbox
LINE_LIMIT = 4 * 1024 * 1024  # a line on the socket pair: an event's body (at most 1 MiB) with its headers
EVENTS_PATH = "/slack/events"
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
     "proxy-authorization", "proxy-authenticate"}
)


def wanted(settings: Settings) -> bool:
    """HTTP mode on SQLite with HTTP_EVENTS_INBOX (Postgres acknowledges on the main loop: a PaaS disk is
    ephemeral, and its processes share the database instead)."""
    return settings.http_events_inbox and settings.database_url.startswith("sqlite:")


@dataclass(frozen=True)
class Forked:
    """The ingress process, as the main process holds it."""

    pid: int
    channel: socket.socket


def fork_ingress(settings: Settings) -> Forked:
    """Fork the ingress. Called before the main process starts its event loop or any thread (a fork copies only
    the calling thread); the modules both need are already loaded, and shared until written."""
    main_end, ingress_end = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the collector would otherwise touch, and so copy, every page of the shared heap
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            main_end.close()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            asyncio.run(Ingress(settings, ingress_end).serve())
        except BaseException:
            log.exception("the ingress process failed")
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)
    ingress_end.close()
    gc.unfreeze()
    return Forked(pid, main_end)


async def send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at end-of-file (the other process is gone)."""
    try:
        line = await reader.readline()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        return None
    if not line:
        return None
    message = json.loads(line)
    assert isinstance(message, dict)
    return message


def is_event_callback(headers: Mapping[str, str], body: bytes) -> bool:
    """An Events API delivery (the body passed the gate's check: one JSON object of a sane depth)."""
    if not headers.get("content-type", "").startswith("application/json"):
        return False
    return bool(json.loads(body).get("type") == "event_callback")


class Ingress:
    """The ingress process's one object: its server, its inbox and its end of the socket pair."""

    def __init__(self, settings: Settings, channel: socket.socket) -> None:
        self._settings = settings
        self._channel = channel
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self._check = Gate(secret, _unused, settings.slack_response_url_hosts).check
        self._inbox: Inbox | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._done: list[int] = []
        self._failed: list[int] = []
        self._flushing: asyncio.TimerHandle | None = None
        self._stopping = False

    async def serve(self) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=self._channel, limit=LINE_LIMIT)
        self._writer = writer
        ready = await receive(reader)
        if ready is None:
            return  # the main process did not start (its database is someone else's, say)
        inbox = Inbox(str(ready["inbox"]))
        try:
            waiting = inbox.open()
        except Exception as exc:
            await send(writer, {"error": f"cannot open the events inbox {inbox.path}: {exc}"})
            return
        self._inbox = inbox
        s = self._settings
        session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(ready["backend"]), limit=0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handler(session))
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=s.http_header_timeout, lingering_time=1.0)
        try:
            await runner.setup()
            cap, backlog = limits(s.http_max_connections, s.http_backlog)
            site = GuardedSite(runner, s.host, s.port, cap, backlog=backlog)
            try:
                await site.start()
            except OSError as exc:
                await send(writer, {"error": "listen", "errno": exc.errno, "strerror": exc.strerror})
                return
            await send(writer, {"listening": cap})
            for arrival in waiting:
                self._hand_over(arrival.id, arrival.headers, arrival.body, arrival.attempts)
            if waiting:
                log.info("events left in the inbox by the last run handed over count=%d", len(waiting))
            await self._obey(reader, writer, site)
        finally:
            await runner.cleanup()
            await session.close()
            if self._flushing is not None:
                self._flushing.cancel()
            self._flush()
            inbox.close()

    async def _obey(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, site: web.BaseSite) -> None:
        """The main process's messages, until `close` or its end."""
        while (message := await receive(reader)) is not None:
            if "done" in message:
                self._queue(self._done, int(message["done"]))
            elif "failed" in message:
                self._queue(self._failed, int(message["failed"]))
            elif "stop" in message:
                self._stopping = True  # a kept-alive connection may still bring one: refused, Slack retries it
                await site.stop()
                await send(writer, {"stopped": True})
            elif "close" in message:
                return

    def _queue(self, batch: list[int], row: int) -> None:
        batch.append(row)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._flushing = None
        done, failed, self._done, self._failed = self._done, self._failed, [], []
        if self._inbox is None:
            return
        try:
            if done:
                self._inbox.remove(done)
            if failed:
                self._inbox.attempted(failed)
        except Exception as exc:  # the rows stay; handed over again at the next start, and deduplicated there
            log.warning("could not update the events inbox error=%s", type(exc).__name__)

    def _hand_over(self, row: int, headers: Mapping[str, str], body: bytes, attempts: int = 0) -> None:
        """To the main process; written without waiting (the socket's buffer), in the order recorded."""
        assert self._writer is not None
        line = {"event": row, "headers": dict(headers), "body": body.decode("utf-8"), "attempts": attempts}
        self._writer.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def _handler(self, session: aiohttp.ClientSession) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if self._stopping:
                busy = web.json_response({"error": "the bridge is stopping"}, status=503)
                busy.force_close()
                return busy
            body = await read_body(request, self._settings.http_body_timeout)
            if body is None:
                return body_too_slow()
            if request.method == "POST" and request.path == EVENTS_PATH:
                headers = {k.lower(): v for k, v in request.headers.items()}
                with log_context(request_id=uuid.uuid4().hex[:12]):
                    refusal = self._check(headers, body)
                    if refusal is not None:
                        log.warning("slack request refused status=%s reason=%s", refusal.status, refusal.reason)
                        return web.json_response({"error": refusal.reason}, status=refusal.status)
                    if is_event_callback(headers, body):
                        return self._event(headers, body)
            return await self._pass_on(request, session, body)  # commands, buttons, url_verification: main's

        return handle

    def _event(self, headers: dict[str, str], body: bytes) -> web.Response:
        assert self._inbox is not None
        expires = int(headers["x-slack-request-timestamp"]) + REPLAY_WINDOW + 1
        try:
            arrival = self._inbox.record(headers["x-slack-signature"], expires, headers, body)
        except Replayed:
            log.warning("slack request refused status=401 reason=replayed request")
            return web.json_response({"error": "replayed request"}, status=401)
        except Exception as exc:
            # Not answered 200 without the event on disk: Slack delivers it again.
            log.warning("slack event not recorded, answered 500 error=%s", type(exc).__name__)
            return web.json_response({"error": "the request could not be recorded"}, status=500)
        self._hand_over(arrival.id, headers, body)
        return web.Response(status=200)

    async def _pass_on(self, request: web.Request, session: aiohttp.ClientSession, body: bytes) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "x-bridge-peer"
        )
        headers[PEER_HEADER] = request.remote or ""
        try:
            async with session.request(
                request.method, f"http://bridge{request.rel_url}", headers=headers, data=body, allow_redirects=False
            ) as answer:
                content = await answer.read()
                kept = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP)
                return web.Response(status=answer.status, body=content, headers=kept)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("request not passed on to the bridge path=%s error=%s", request.path, type(exc).__name__)
            return web.json_response({"error": "the bridge is not answering"}, status=503)


async def _unused(signature: str, until: float) -> bool:
    raise AssertionError("the ingress checks replays against its inbox")
