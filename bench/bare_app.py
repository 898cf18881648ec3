"""The baseline: a bare slack-bolt AsyncApp that only acknowledges, served exactly as bridge/serve.py serves.

Same signing secret, same `process_before_response`, same aiohttp adapter and routes; its app_mention
listener does nothing. Run as `python -m bench.bare_app` with SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
SLACK_API_URL (Bolt calls auth.test on the first request), HOST and PORT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build(record: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> web.Application:
    """The app; `record` runs inside the listener, before the acknowledgement (bench/recording_app.py)."""
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=True)

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any]) -> None:
        if record is not None:
            await record(body)

    async def handle_slack(request: web.Request) -> web.Response:
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post("/slack/events", handle_slack)
    web_app.router.add_get("/healthz", healthz)
    return web_app


async def serve(app: web.Application | None = None) -> None:
    runner = web.AppRunner(app or build(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000")))
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
