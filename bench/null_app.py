"""The load generator's floor: a raw aiohttp server that answers 200 at once, with no Bolt and no checks.

Timing this under the same schedule shows what the client and HTTP on loopback cost by themselves.
Run as `python -m bench.null_app` with HOST and PORT.
"""

from __future__ import annotations

import os

from aiohttp import web


async def ok(_request: web.Request) -> web.Response:
    return web.Response(status=200)


def main() -> None:
    app = web.Application()
    app.router.add_post("/slack/events", ok)
    app.router.add_get("/healthz", ok)
    web.run_app(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "3000")),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
