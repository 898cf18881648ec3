"""The HTTP server's guards against clients that never finish a request.

- A request's head must arrive within `http_header_timeout` of connecting, or of the previous response on a
  kept-alive connection (aiohttp's keep-alive timer, which it arms on connect and closes idle handlers with);
  so an idle keep-alive connection is closed after that long too.
- A request's body must arrive within `http_body_timeout` (`read_body`); past it the answer is 408 and the
  connection is closed.
- At most `http_max_connections` connections at once (fewer when the process's file limit asks for it):
  when full, the connection that has waited longest for its request head is closed to make room, or else the
  one that has waited longest for its request's body (a client that sends a head and never its body holds a
  connection for the whole body timeout; a flood of them would otherwise turn every newcomer away); when every
  connection is busy with a whole request, the newcomer gets a 503 (Slack delivers it again) and is closed.

So a slow or half-open client is closed, everyone else is served, and the process never runs out of files.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from bridge.logs import Throttled

log = logging.getLogger(__name__)

BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
WARN_EVERY = 60.0  # seconds between two log lines about a full server


RESERVED_FILES = 64  # for the database, logs and the like
OUTGOING_FILES = 256  # for connections to Letta and Slack (at most a quarter of the open-file limit)


class _MalformedHeads(logging.Filter):
    """aiohttp logs every request head it cannot parse (a scanner's, a header line over 8190 bytes) at ERROR, with a
    traceback, then answers it 400: said instead as a request refused at the door, once a minute per kind."""

    def __init__(self) -> None:
        super().__init__()
        self._refused = Throttled(log)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            kind = type(exc).__name__
            self._refused.warning(kind, "http request refused status=400 reason=malformed request (%s)", kind)
            return False
        return True


_MALFORMED = _MalformedHeads()


def limits(connections: int, backlog: int, reserved: int = 0) -> tuple[int, int]:
    """(connections, backlog) that fit the process's open-file limit: asyncio accepts up to `backlog`
    connections at once before the cap can close any, and the sockets the cap closes are released only a loop
    turn later, so twice the backlog is budgeted beside the connections, leaving RESERVED_FILES for everything
    else, and OUTGOING_FILES (a quarter of the limit at most) for the connections the bridge makes to Letta and
    Slack, so that a flood of idle clients cannot starve a turn of a socket, and `reserved` for the caller's own
    (the ingress's connections to the main app). With the common limit of 1024 files that leaves 448 connections
    (384 behind the ingress)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return connections, backlog
    backlog = max(1, min(backlog, soft // 8))
    outgoing = min(OUTGOING_FILES, soft // 4)
    return max(8, min(connections, soft - 2 * backlog - RESERVED_FILES - outgoing - reserved)), backlog


class _Busy(asyncio.Protocol):
    """A connection over the cap: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY)
        transport.close()


_reading: dict[RequestHandler, float] = {}  # connections whose handler waits in read_body, and since when


def _waiting_for_a_request(handler: RequestHandler) -> bool:
    """Connected (or kept alive) with no complete request head yet."""
    waiter = handler._waiter
    return waiter is not None and not waiter.done()


class GuardedSite(web.TCPSite):
    """A TCP site whose accept path keeps the number of connections under a cap."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, max_connections: int, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.max_connections = max_connections
        self._last_warning = 0.0

    async def start(self) -> None:
        logging.getLogger("aiohttp.server").addFilter(_MALFORMED)  # once: a filter already there is not added again
        await web.BaseSite.start(self)  # registers the site; the server is made below, as TCPSite would
        server = self._runner.server
        assert server is not None

        def accept() -> asyncio.BaseProtocol:
            connections = server.connections
            if len(connections) >= self.max_connections:
                idle = next((h for h in connections if _waiting_for_a_request(h)), None) or _longest_reading(
                    connections
                )
                if idle is None:
                    self._warn("every connection is busy with a request; a new one got 503")
                    return _Busy()
                _reading.pop(idle, None)
                idle.force_close()  # the longest-waiting idle or half-sent connection makes room
                self._warn("connections at the cap; closing those that wait longest for a request or its body")
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            accept,
            every_family(self._host),
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning("http %s max_connections=%d", what, self.max_connections)


def every_family(host: str | None) -> str | list[str] | None:
    """`::` means every address, as it does for Node or nginx; asyncio alone would listen on IPv6 only (it sets
    IPV6_V6ONLY), and a platform's router that connects over IPv4 would find nothing."""
    return [host, "0.0.0.0"] if host is not None and host.strip("[]") == "::" else host  # noqa: S104 - as asked


def body_too_slow() -> web.Response:
    """The answer to a request whose body did not arrive in time: 408, and the connection closed."""
    log.debug("request body not sent in time; connection closed")  # a flood must not flood the log
    slow = web.json_response({"error": "request body not sent in time"}, status=408)
    slow.force_close()
    return slow


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """Why the server could not listen on host:port, and what to do, in one line."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another bridge, or another program, holds the port)"
        fix = "stop it, or set PORT to a free port"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
        fix = "set PORT to a port above 1024, such as 3000"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this host has no such address"
        fix = "set HOST to one of its addresses, or to 0.0.0.0 for all of them"
    else:
        why, fix = exc.strerror or str(exc), "check HOST and PORT"
    return f"cannot listen on {where}: {why}; {fix}."


def _longest_reading(connections: list[RequestHandler]) -> RequestHandler | None:
    """Of these connections, the one that has waited longest for its request's body (connections are listed
    in the order they were accepted, but a kept-alive one may start its request late, so the times decide)."""
    waiting = [(since, i) for i, h in enumerate(connections) if (since := _reading.get(h)) is not None]
    return connections[min(waiting)[1]] if waiting else None


async def read_body(request: web.Request, seconds: float) -> bytes | None:
    """The request's body, or None when the client did not send it within `seconds`, hung up before it had,
    or was closed to make room for a newcomer (GuardedSite) while it waited."""
    handler = request.protocol
    _reading[handler] = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except (TimeoutError, ConnectionResetError):
        return None
    finally:
        _reading.pop(handler, None)
