"""An App Server behind a reverse proxy (wss://) whose backend is restarting: the proxy answers the WebSocket
upgrade with 502/503. That is a server out of reach, not a missing route: before, the thread was told the server
had no route for the request, and ThreadConversations took the App Server for one without conversations."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.errors import Kind, LettaError
from bridge.threads import ThreadConversations


async def _gateway(status: int) -> tuple[web.AppRunner, str]:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html>502 Bad Gateway</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"ws://127.0.0.1:{port}"


class _Store:
    async def conversation(self, key: object, agent_id: str) -> None:
        return None


@pytest.mark.parametrize("status", [502, 503])
def test_a_gateway_answering_the_upgrade_with_a_5xx_is_not_said_as_a_missing_route(status: int) -> None:
    async def main() -> tuple[LettaError, str | LettaError | None]:
        runner, url = await _gateway(status)
        letta = AppServerLetta(url, connect_timeout=1.0)
        try:
            try:
                await letta.app.list_agents()
            except LettaError as error:
                failed = error
            threads = ThreadConversations(_Store(), letta, "T1", "C1", "1.0")  # type: ignore[arg-type]
            try:
                made: str | LettaError | None = await threads.conversation("agent-local-x")
            except LettaError as error:
                made = error
            return failed, made
        finally:
            await letta.aclose()
            await runner.cleanup()

    failed, made = asyncio.run(main())
    said = failed.explain("alice")
    # A 502 from a gateway is a server that cannot be reached right now, not a server without that route.
    problems = []
    if failed.kind == Kind.ROUTE_MISSING or "no route" in said:
        problems.append(f"said in Slack: {said!r}")
    # And the thread's conversation is not silently taken for "this server has no conversations".
    if made is None:
        problems.append("ThreadConversations.conversation() returned None (taken for a server with no conversations)")
    assert not problems, problems
    assert failed.kind == Kind.UNREACHABLE and "gateway or proxy" in failed.detail, (failed.kind, failed.detail)
