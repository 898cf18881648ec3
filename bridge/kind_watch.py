"""LETTA_BASE_URL written http(s):// did not answer within a few seconds when the bridge started, so its kind (a
REST server, or an App Server, which answers `GET /app-server-info`) could not be told: the bridge starts as a REST
server's client, listens all the same, says so, and asks again every few seconds until the server answers. An App
Server's answer stops the bridge with an error, so that its supervisor starts it again as that server's client:
until then every mention would fail (the REST routes an App Server does not have)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.clients import letta_kind_told
from bridge.config import Settings
from bridge.letta.appserver_letta import ServerKind
from bridge.letta.errors import LettaError

log = logging.getLogger(__name__)

LOOK_EVERY = 5.0  # seconds between two asks of a server that did not answer
AT_START_WITHIN = 3.0  # seconds the ask before listening may take, whatever LETTA_CONNECT_TIMEOUT says


async def told_at_start(settings: Settings) -> ServerKind | LettaError:
    """The kind asked before `serve` or `socket` listens, for AT_START_WITHIN seconds at most: a PaaS kills a
    process that does not listen on PORT within its boot timeout (60 s on Heroku), and its health checks must not
    wait on Letta. A server that has not answered by then is taken for REST and asked again (KindWatch)."""
    return await letta_kind_told(settings, within=AT_START_WITHIN)


def kind_at_start(told: ServerKind | LettaError) -> ServerKind:
    """The kind the bridge starts as: a server that did not answer is taken for REST for now (said once serving)."""
    return "rest" if isinstance(told, LettaError) else told


class KindWatch:
    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self._settings = settings
        self._stop = stop
        self.why: str | None = None  # set when the bridge stopped because the server is an App Server

    async def run(self) -> None:
        url = self._settings.letta_base_url
        while True:
            await asyncio.sleep(LOOK_EVERY)
            told = await letta_kind_told(self._settings)
            if isinstance(told, LettaError):
                continue
            if told == "rest":
                log.info("the Letta server at %s answers now: a REST server, as taken", url)
                return
            self.why = (
                f"the Letta server at {url} answers now, and it is an App Server, which the bridge started as a "
                "REST server's client while it did not answer; the bridge stops so that it is started again "
                "(write LETTA_BASE_URL as ws://… to start without asking)"
            )
            log.error(self.why)
            self._stop.set()
            return


@asynccontextmanager
async def kind_watched(
    settings: Settings, told: ServerKind | LettaError, stop: asyncio.Event
) -> AsyncIterator[KindWatch]:
    """A KindWatch beside the serving bridge when the server did not answer at start, never outliving it."""
    watch = KindWatch(settings, stop)
    task = None
    if isinstance(told, LettaError):
        log.warning(
            "the Letta server at %s did not answer at start (%s): taken for a REST server until it answers; "
            "an App Server's URL written ws:// (or wss://) needs no answer to be told",
            settings.letta_base_url, told.kind,
        )
        task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
