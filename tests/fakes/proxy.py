"""A forwarding HTTP proxy on 127.0.0.1, as a corporate one behaves for plain http:// destinations: a client sends
it the request with the absolute URL (`GET http://host:port/path HTTP/1.1`), or asks for a tunnel (`CONNECT
host:port`); it connects to the host and passes bytes both ways, unchanged. It notes the first request line of
each connection, which is what a test asks: did this connection go through the proxy, and to where?

A client's pooled connection to a proxy serves one destination only (aiohttp keys its pool by proxy and host),
so the bytes after the first request go to the same host; servers accept the absolute form (RFC 9112 §3.2.2).
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit


class ForwardingProxy:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (method, target) of each connection's first request
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> ForwardingProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ForwardingProxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None and self._server is not None
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def targets(self) -> list[str]:
        """host:port of each connection made through the proxy."""
        with self._lock:
            seen = list(self.seen)
        return [t if m == "CONNECT" else (urlsplit(t).netloc or t) for m, t in seen]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        with self._lock:
            self.seen.append((method, target))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or 80)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            up_writer.write(head)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()
