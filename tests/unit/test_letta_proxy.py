"""A proxy that refuses to carry the bridge's requests to Letta (HTTP 407: it wants credentials) or cannot be
reached is said as the proxy's failure, naming the variables to check; before, it read as Letta's ("the
connection ... dropped: it may have restarted", "nothing answers there", "Letta refused the request")."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bridge.letta.errors import Kind, LettaError
from bridge.letta.transport import LettaTransport

REFUSAL = (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n"
           b"Content-Length: 0\r\nConnection: close\r\n\r\n")


async def _refusing_proxy() -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(REFUSAL)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _health_through(base_url: str, proxy: str) -> LettaError:
    transport = LettaTransport(base_url, api_key="sk-x", send_retries=0, connect_timeout=5)
    transport.proxy = proxy
    try:
        with pytest.raises(LettaError) as failed:
            await transport._request("GET", "/v1/health/")
        return failed.value
    finally:
        await transport.aclose()


@pytest.mark.parametrize("base_url", ["https://letta.example.org", "http://letta.example.org:8283"])
def test_a_proxy_that_wants_credentials_is_said_as_the_proxys(base_url: str) -> None:
    async def main() -> LettaError:
        server, port = await _refusing_proxy()
        async with server:
            return await _health_through(base_url, f"http://127.0.0.1:{port}")

    error = asyncio.run(main())
    assert error.kind == Kind.UNREACHABLE and error.certainly_unsent and error.proxy
    said = error.for_operator("the health check")
    assert "through the proxy" in said and "HTTP 407" in said and "HTTPS_PROXY" in said, said
    assert "proxy this host goes through failed" in error.explain() and "HTTP_PROXY" in error.explain()


def test_a_proxy_that_cannot_be_reached_is_said_as_the_proxys() -> None:
    error = asyncio.run(_health_through("https://letta.example.org", f"http://127.0.0.1:{_closed_port()}"))
    assert error.kind == Kind.UNREACHABLE and error.proxy
    assert "through the proxy (ClientProxyConnectionError)" in error.for_operator("the health check")
