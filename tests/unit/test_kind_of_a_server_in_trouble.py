"""A Letta server whose `GET /app-server-info` answers that the server is in trouble (a reverse proxy's 502/503/504
while the App Server behind it is down, a 429, a 408) has not told its kind: it is asked again, as one that did not
answer, and is not taken for a REST server for good. Only a REST server's own answer (404: no such route) says REST
(taken over from second reader secKM's test_seckm_kind_untold.py)."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from bridge.clients import LettaServers, own_letta_client
from bridge.config import Settings
from bridge.letta.appserver_letta import told_kind
from bridge.letta.errors import Kind, LettaError
from bridge.store import Store
from tests.unit.test_store import run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(port: int, info_status: int) -> web.AppRunner:
    """A server answering `/app-server-info` with `info_status` (as a proxy or a REST server would) and `[]` else."""

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/app-server-info":
            return web.json_response({"detail": f"HTTP {info_status}"}, status=info_status)
        return web.json_response([])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def told_by(info_status: int) -> object:
    port = free_port()
    runner = await serve(port, info_status)
    try:
        return await told_kind(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_a_5xx_429_or_408_answer_to_app_server_info_tells_no_kind_and_a_404_tells_rest() -> None:
    """The proxy's or the server's trouble is a failure to tell (said as the server unreachable, or rate-limiting,
    with no status that would make a send's outcome look unknown); a REST server's 404 is its kind."""
    for status in (500, 502, 503, 504, 408):
        told = asyncio.run(told_by(status))
        assert isinstance(told, LettaError) and told.kind is Kind.UNREACHABLE, (status, told)
        assert f"HTTP {status}" in told.detail and not told.outcome_unknown, (status, told.detail)
    limited = asyncio.run(told_by(429))
    assert isinstance(limited, LettaError) and limited.kind is Kind.RATE_LIMITED, limited
    assert asyncio.run(told_by(404)) == "rest"


def test_an_own_app_server_behind_a_proxy_that_answers_502_while_it_is_down_gets_a_stand_in(
    database_url: str,
) -> None:
    """https://letta.example.com -> a reverse proxy -> the App Server: while the App Server is down the proxy
    answers /app-server-info 502, and the workspace's server gets the stand-in that is asked again, not a REST
    client that would fail every mention with 404 until a restart."""

    async def body(store: Store) -> None:
        port = free_port()
        settings = Settings(letta_base_url=f"http://127.0.0.1:{port}")
        runner = await serve(port, 502)
        servers = LettaServers(store, own_letta_client)
        try:
            first = await servers.get(settings)
            assert first.client.kind_guessed, type(first.client).__name__
        finally:
            await runner.cleanup()
            await servers.aclose()

    run(database_url, body)
