"""A TCP relay on 127.0.0.1 in front of a server that cuts one connection once: when a given pattern is about to
pass from the server to the client, the connection is closed instead, as a proxy or load balancer that drops it
mid-answer does. Every other byte, and every later connection, passes unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class CutOnce:
    def __init__(self, target_port: int, pattern: bytes, port: int = 0) -> None:
        self.target_port = target_port
        self.pattern = pattern
        self.cut = threading.Event()
        self.port = port  # 0: any free one
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="CutOnce", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> CutOnce:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", self.port), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, watch: bool) -> None:
            seen = b""
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    seen = (seen + data)[-(len(self.pattern) + len(data)) :]
                    if watch and not self.cut.is_set() and self.pattern in seen:
                        self.cut.set()
                        break
                    sink.write(data)
                    await sink.drain()
            for side in (writer, up_writer):
                side.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))
