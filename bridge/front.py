"""HTTP mode on SQLite, the main loop's side of the ingress (`ingress.py` on a thread, or `ingress_process.py`):
the main app on a private Unix socket for the requests the ingress passes on, the events it recorded handed to Bolt
(`arrivals.py`) and reported back, stop and close in order. Without it, `left_inbox.py` hands over what a run with
it left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Protocol

from aiohttp import web

from bridge.arrivals import Arrivals, Dispatch, Ping
from bridge.config import Settings
from bridge.http import cannot_listen
from bridge.inbox import Arrival, Inbox, inbox_path
from bridge.ingress import Check, Ingress, IngressError
from bridge.ingress_process import IngressProcess
from bridge.store.database_url import sqlite_path

log = logging.getLogger(__name__)

ARRIVALS_GRACE = 2.0  # seconds a stop waits for acknowledged events to become turns


class FrontError(Exception):
    """The ingress could not start: the message says why, in one line."""


class Listening(Protocol):
    """The ingress as the main loop drives it, on a thread (`Ingress`) or in a process (`IngressProcess`)."""

    async def start(self) -> int: ...
    async def stop_listening(self) -> None: ...
    async def close(self) -> None: ...
    def handled(self, arrival: Arrival) -> None: ...
    def failed(self, arrival: Arrival) -> None: ...


class Front:
    """HTTP mode on SQLite: the ingress listens on HOST:PORT and records each event in the inbox before its ack
    (ingress.py: on a thread of its own, or with `process`, HTTP_INGRESS=process, in a process of its own); the
    main app listens on a Unix socket for the requests it passes on, and `arrivals` hands the recorded events to
    Bolt here."""

    def __init__(
        self,
        settings: Settings,
        check: Check,
        dispatch: Dispatch,
        process: IngressProcess | None = None,
        ping: Ping | None = None,
    ) -> None:
        self._settings = settings
        self._site: web.UnixSite | None = None
        self._folder = ""  # the thread's: the process keeps its own
        self.ingress: Listening
        if process is not None:
            self._socket = process.backend
            process.deliver_to(self._arrive)
            self.ingress = process
        else:
            self._folder = tempfile.mkdtemp(prefix="letta-bridge-")  # mode 700: this user's processes only
            self._socket = os.path.join(self._folder, "app.sock")
            inbox = Inbox(inbox_path(sqlite_path(settings.database_url)))
            self.ingress = Ingress(settings, check, inbox, self._arrive, self._socket)
        self.arrivals = Arrivals(dispatch, self.ingress.handled, self.ingress.failed, ping)

    def _arrive(self, arrival: Arrival) -> None:
        self.arrivals.arrive(arrival)

    async def start(self, runner: web.AppRunner) -> int:
        self._site = web.UnixSite(runner, self._socket)
        await self._site.start()
        try:
            return await self.ingress.start()
        except OSError as exc:
            raise FrontError(cannot_listen(self._settings.host, self._settings.port, exc)) from None
        except IngressError as exc:
            raise FrontError(str(exc)) from None

    async def stop(self, grace: float) -> None:
        """No new requests; the events already acknowledged handled (or left in the inbox for the next start)."""
        await self.ingress.stop_listening()
        # Handing an event to Bolt takes milliseconds; what is still in hand after a moment waits to be tried
        # again, and stays in the inbox for the next start, so the turns keep their whole grace.
        await self.arrivals.stop(min(grace, ARRIVALS_GRACE))
        if self._site is not None:
            await self._site.stop()

    async def close(self) -> None:
        await self.arrivals.stop(0)
        await self.ingress.close()
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
