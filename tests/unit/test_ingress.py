"""bridge/ingress.py on its own thread: a signed event is recorded and handed over before its 200; anything
else is passed on to the main app unchanged (with the client's address, which a client cannot forge); a refused
request is answered without reaching either; once it stops listening, a kept-alive connection gets a 503."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from bridge.config import Settings
from bridge.inbox import Arrival, Inbox, waiting
from bridge.ingress import PEER_HEADER, Ingress
from bridge.slack.gate import Gate
from tests.fakes.signing import event_body, mention_event, signed_headers

SECRET = "ingress-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(port: int) -> Settings:
    values = dict(host="127.0.0.1", port=port, http_header_timeout=5.0, http_body_timeout=5.0,
                  http_max_connections=64, http_backlog=16)
    return cast(Settings, SimpleNamespace(**values))


async def raw_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    """A request whose path no client library would normalise first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


def test_events_are_recorded_others_passed_on_and_refusals_answered_here(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    arrivals: list[Arrival] = []

    async def backend(request: web.Request) -> web.Response:
        seen.append({"path": request.raw_path, "peer": request.headers.get(PEER_HEADER),
                     "cookie": request.headers.get("Cookie"), "body": await request.text()})
        return web.json_response({"from": "main"}, status=201, headers={"Set-Cookie": "a=b"})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", backend)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = str(tmp_path / "app.sock")
        await web.UnixSite(runner, sock).start()
        port = free_port()
        inbox = Inbox(str(tmp_path / "bridge.db.inbox"))
        ingress = Ingress(settings(port), Gate(SECRET, _never).check, inbox, arrivals.append, sock)
        await ingress.start()
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                body = event_body(mention_event("hi", channel="C1"))
                headers = signed_headers(SECRET, body, "application/json")
                async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
                    assert (r.status, await r.text()) == (200, "")
                async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
                    assert r.status == 401 and "replayed" in await r.text()
                forged = dict(headers, **{"X-Slack-Signature": "v0=" + "0" * 64})
                async with http.post(f"{url}/slack/events", data=body, headers=forged) as r:
                    assert r.status == 401
                challenge = json.dumps({"type": "url_verification", "challenge": "c", "token": "t"}).encode()
                signed = signed_headers(SECRET, challenge, "application/json")
                async with http.post(f"{url}/slack/events", data=challenge, headers=signed) as r:
                    assert r.status == 201 and r.headers["Set-Cookie"] == "a=b"
                async with http.get(f"{url}/metrics", headers={PEER_HEADER: "10.9.9.9"}) as r:
                    assert r.status == 201
                # The events path spelled another way is passed on as spelled: the main app does not take it for
                # its events path (where the inbox's replay check would be skipped).
                assert await raw_post(port, "/slack/./events", body, headers) == 201
                await ingress.stop_listening()
                try:  # a kept-alive connection is refused; a new one finds nobody listening
                    async with http.post(f"{url}/slack/events", data=body, headers=headers) as r:
                        assert r.status == 503
                except aiohttp.ClientConnectionError:
                    pass
            await asyncio.sleep(0.05)  # the hand-over is a call_soon_threadsafe onto this loop
        finally:
            await ingress.close()
            await runner.cleanup()

    asyncio.run(main())
    assert len(arrivals) == 1 and json.loads(arrivals[0].body)["event"]["text"].endswith("hi")
    assert [s["path"] for s in seen] == ["/slack/events", "/metrics", "/slack/./events"]
    assert all(s["peer"] == "127.0.0.1" for s in seen)  # the client's own address, not the one it sent
    assert all(s["cookie"] is None for s in seen)  # a cookie the main app set went to its client only
    assert json.loads(seen[0]["body"])["challenge"] == "c"


async def _never(signature: str, until: float) -> bool:
    raise AssertionError("the ingress checks replays against its inbox, not the store")


def test_a_burst_is_handed_over_in_recorded_order_and_its_handled_rows_removed(tmp_path: Path) -> None:
    """Hand-overs and reports cross the threads in batches (one wake-up each way per batch): none is lost or
    reordered, however the two threads interleave."""
    arrivals: list[Arrival] = []
    path = str(tmp_path / "bridge.db.inbox")

    async def main() -> None:
        port = free_port()
        ingress = Ingress(settings(port), Gate(SECRET, _never).check, Inbox(path), arrivals.append, "/nowhere")
        await ingress.start()

        async def post(http: aiohttp.ClientSession, n: int) -> int:
            body = event_body(mention_event(f"burst {n}", channel="C1"))
            headers = signed_headers(SECRET, body, "application/json")
            async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
                return r.status

        try:
            async with aiohttp.ClientSession() as http:
                assert await asyncio.gather(*(post(http, n) for n in range(60))) == [200] * 60
            for _ in range(100):
                if len(arrivals) == 60:
                    break
                await asyncio.sleep(0.01)
            for arrival in arrivals[:20]:
                ingress.handled(arrival)
            await asyncio.sleep(0.3)  # rows go in batches, every FLUSH_EVERY
            assert waiting(path) == 40
            for arrival in arrivals[20:45]:
                ingress.handled(arrival)
            for arrival in arrivals[45:50]:
                ingress.failed(arrival)
            await asyncio.sleep(0.3)
            assert waiting(path) == 15  # the failed ones stay, counted
        finally:
            await ingress.close()  # what is reported by now is written on the way out

    asyncio.run(main())
    ids = [a.id for a in arrivals]
    assert len(ids) == 60 and ids == sorted(ids)
    left = Inbox(path)
    rows = left.open()
    assert [r.id for r in rows] == ids[45:]
    assert [r.attempts for r in rows] == [1] * 5 + [0] * 10
    left.close()


def test_a_start_given_up_before_it_listened_ends_the_thread_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A signal while `serve` starts cancels the start wherever it is: here while the ingress thread still opens
    its inbox. The thread then finds nobody waiting for it to listen, and ends without an error or a traceback
    (the crash campaign saw 'the ingress thread stopped' with InvalidStateError after a SIGTERM at start-up)."""
    opening, release = threading.Event(), threading.Event()
    inbox = Inbox(str(tmp_path / "bridge.db.inbox"))
    opened = inbox.open

    def slow_open() -> list[Arrival]:
        opening.set()
        release.wait(10)
        return opened()

    inbox.open = slow_open  # type: ignore[method-assign]

    async def main() -> None:
        ingress = Ingress(settings(free_port()), Gate(SECRET, _never).check, inbox, lambda _: None,
                          str(tmp_path / "none.sock"))
        starting = asyncio.create_task(ingress.start())
        await asyncio.to_thread(opening.wait, 10)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        release.set()
        await ingress.close()

    with caplog.at_level(logging.DEBUG, logger="bridge.ingress"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
