"""The main process's side of the ingress (`ingress.py`): the main app on a private Unix socket for the requests
the ingress passes on, and the events it recorded handed to Bolt (`arrivals.py`), each reported back so its
inbox row goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bridge.arrivals import Arrivals
from bridge.config import Settings
from bridge.http import cannot_listen
from bridge.inbox import Arrival, inbox_path
from bridge.ingress import LINE_LIMIT, Forked, receive, send
from bridge.store.base import sqlite_path

log = logging.getLogger(__name__)

ARRIVALS_GRACE = 2.0  # seconds a stop waits for acknowledged events to become turns
EXIT_WAIT = 5.0  # seconds the ingress has to exit once told to close


class FrontError(Exception):
    """The ingress could not start, or ended on its own: the message says why."""


class Front:
    def __init__(self, settings: Settings, app: AsyncApp, forked: Forked) -> None:
        self._settings = settings
        self._forked = forked
        self._folder = tempfile.mkdtemp(prefix="letta-bridge-")  # mode 700: this user's processes only
        self._socket = os.path.join(self._folder, "app.sock")
        self._site: web.UnixSite | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.ended = asyncio.Event()  # the ingress went away on its own
        self._closing = False
        self.arrivals = Arrivals(app.async_dispatch, self._handled, self._failed)

    async def start(self, runner: web.AppRunner) -> int:
        """Serve the passed-on requests, tell the ingress to listen; its connection cap."""
        self._site = web.UnixSite(runner, self._socket)
        await self._site.start()
        reader, self._writer = await asyncio.open_unix_connection(sock=self._forked.channel, limit=LINE_LIMIT)
        inbox = inbox_path(sqlite_path(self._settings.database_url))
        await send(self._writer, {"ready": True, "backend": self._socket, "inbox": inbox})
        first = await receive(reader)
        if first is None:
            raise FrontError("the ingress process ended before it listened (its log line above says why)")
        if first.get("error") == "listen":
            error = OSError(int(first["errno"]), str(first["strerror"]))
            raise FrontError(cannot_listen(self._settings.host, self._settings.port, error))
        if "error" in first:
            raise FrontError(str(first["error"]))
        self._reading = asyncio.create_task(self._read(reader), name="ingress events")
        return int(first["listening"])

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await receive(reader)) is not None:
            if "event" in message:
                body = str(message["body"]).encode("utf-8")
                headers = {str(k): str(v) for k, v in dict(message["headers"]).items()}
                self.arrivals.arrive(Arrival(int(message["event"]), headers, body, int(message["attempts"])))
            elif "stopped" in message:
                self._stopped.set()
        self._stopped.set()
        if not self._closing:
            log.error("the ingress process ended; the bridge stops")
            self.ended.set()

    def _handled(self, arrival: Arrival) -> None:
        self._tell({"done": arrival.id})

    def _failed(self, arrival: Arrival) -> None:
        self._tell({"failed": arrival.id})

    def _tell(self, message: dict[str, Any]) -> None:
        """Without waiting: the row stays if the ingress is gone, and the next start hands it over again."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(json.dumps(message).encode() + b"\n")

    async def stop(self, grace: float) -> None:
        """No new requests; the events already acknowledged made turns (or left in the inbox for the next start)."""
        if self._writer is not None and not self.ended.is_set():
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):  # it is closed in any case
                await send(self._writer, {"stop": True})
                async with asyncio.timeout(EXIT_WAIT):
                    await self._stopped.wait()
        # Handing an event to Bolt takes milliseconds; what is still in hand after a moment waits to be tried
        # again, and stays in the inbox for the next start, so the turns keep their whole grace.
        await self.arrivals.stop(min(grace, ARRIVALS_GRACE))
        if self._site is not None:
            await self._site.stop()

    async def close(self) -> None:
        """The ingress told to close (its last removals written), waited for, and its socket folder removed."""
        self._closing = True
        await self.arrivals.stop(0)
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await send(self._writer, {"close": True})
        try:
            async with asyncio.timeout(EXIT_WAIT):
                await asyncio.to_thread(os.waitpid, self._forked.pid, 0)
        except TimeoutError:
            log.warning("the ingress process did not exit; killed pid=%d", self._forked.pid)
            os.kill(self._forked.pid, signal.SIGKILL)
            await asyncio.to_thread(os.waitpid, self._forked.pid, 0)
        except ChildProcessError:
            pass
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        shutil.rmtree(self._folder, ignore_errors=True)
