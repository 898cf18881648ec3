"""bridge/http.py's connection cap, in process: who is closed to make room when every connection is taken."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from aiohttp import web

from bridge.http import GuardedSite, body_too_slow, read_body

HEAD = b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{"


async def _serve(cap: int, body_timeout: float = 30.0) -> tuple[web.AppRunner, int]:
    async def receive(request: web.Request) -> web.Response:
        body = await read_body(request, body_timeout)
        if body is None:
            return body_too_slow()
        return web.Response(text=f"got {len(body)}")

    app = web.Application()
    app.router.add_post("/in", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, cap)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port: int = server.sockets[0].getsockname()[1]
    return runner, port


async def _slow_client(port: int) -> socket.socket:
    """A connection that sent a whole head and one byte of a 900-byte body, and will never send the rest."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(HEAD)
    sock.setblocking(False)
    await asyncio.sleep(0.05)  # its handler is now waiting in read_body
    return sock


def _closed(sock: socket.socket) -> bool:
    """True once the server has closed the connection, whatever it said first."""
    try:
        while sock.recv(4096):
            pass
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def _post(port: int) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/in", data=b'{"ok": true}') as response:
            return response.status


def test_at_the_cap_the_connection_waiting_longest_for_its_body_makes_room(caplog: pytest.LogCaptureFixture) -> None:
    """A client whose request arrived whole is served at once, even when every connection is held by a client
    that sent a head and never its body; the one that has waited longest is closed, the others are left alone."""
    caplog.set_level(logging.DEBUG)
    asyncio.run(_longest_waiting_makes_room(caplog))


async def _longest_waiting_makes_room(caplog: pytest.LogCaptureFixture) -> None:
    runner, port = await _serve(cap=3)
    slow = [await _slow_client(port) for _ in range(3)]
    try:
        assert await _post(port) == 200
        await asyncio.sleep(0.1)
        assert [_closed(s) for s in slow] == [True, False, False]
        slow.append(await _slow_client(port))  # at the cap again: the next oldest makes room, not the newest
        assert await _post(port) == 200
        await asyncio.sleep(0.1)
        assert [_closed(s) for s in slow[1:]] == [True, False, False]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    finally:
        for s in slow:
            s.close()
        await runner.cleanup()


def test_at_the_cap_with_every_request_whole_and_in_progress_the_newcomer_gets_503() -> None:
    """Nothing to take room from: a connection whose request is being handled is never closed for a newcomer."""
    asyncio.run(_every_request_in_progress())


async def _every_request_in_progress() -> None:
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        await read_body(request, 30.0)
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_post("/in", hold)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, 2)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        held = [asyncio.create_task(_post(port)) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert await _post(port) == 503
        release.set()
        assert await asyncio.gather(*held) == [200, 200]
    finally:
        await runner.cleanup()


def test_a_client_that_hangs_up_before_its_body_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """A client gone mid-body is the slow client's ending, not a fault of the bridge: no traceback in the log."""
    caplog.set_level(logging.DEBUG)

    async def hang_up() -> None:
        runner, port = await _serve(cap=8)
        try:
            (await _slow_client(port)).close()
            await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()

    asyncio.run(hang_up())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
