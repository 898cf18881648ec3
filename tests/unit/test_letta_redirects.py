"""A redirect (never followed) is a server not reached at that URL, not a missing route: ROUTE_MISSING has
lasting meanings elsewhere ("this server has no conversations" for the rest of the process, "no groups")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.targets import TargetError, resolve_target

CONVS = b'[{"id": "conv-1", "agent_id": "agent-1"}]'


async def server(redirecting: dict[str, bool]) -> asyncio.Server:
    """A Letta whose every route answers, except while `redirecting["on"]` (or, with `redirecting["posts"]`, for
    every POST): then a 302 to a maintenance page (or an auth proxy's login page) on another origin."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        if redirecting["on"] or (redirecting.get("posts") and head.startswith(b"POST")):
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: https://status.example.com/maintenance\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(CONVS), CONVS))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@asynccontextmanager
async def client_of(redirecting: dict[str, bool]) -> AsyncIterator[LettaClient]:
    """A client of `server(redirecting)`, closed with it."""
    srv = await server(redirecting)
    client = LettaClient(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", api_key="k", send_retries=0,
                         retry_base=0)
    try:
        yield client
    finally:
        await client.aclose()
        srv.close()


def test_a_passing_redirect_does_not_make_the_server_one_without_conversations_for_good() -> None:
    """One 302 on the conversations list (a maintenance page, an auth proxy's login) was taken for a missing route,
    and `has_conversations` remembered False for the life of the process: every Slack thread afterwards went to the
    agent's own (default) context, threads mixed together."""

    async def main() -> tuple[bool | Exception, bool]:
        redirecting = {"on": True}
        async with client_of(redirecting) as client:
            try:
                first: bool | Exception = await client.has_conversations()
            except LettaError as error:
                first = error
            redirecting["on"] = False  # the maintenance is over
            return first, await client.has_conversations()

    first, later = asyncio.run(main())
    assert later is True, f"after one redirect (first answer: {first!r}) the server is taken to have no conversations"


def test_binding_a_group_behind_a_redirect_does_not_say_the_server_has_no_groups() -> None:
    """`/letta bind group-…` on a server answering 302: the admin read 'this Letta server has no groups; bind the
    agents themselves', and the redirect's words (where it leads, which URL to set) were dropped."""

    async def main() -> str:
        async with client_of({"on": True}) as client:
            with pytest.raises(TargetError) as caught:
                await resolve_target(client, ["group-00000000-0000-4000-8000-000000000001"])
        return str(caught.value)

    said = asyncio.run(main())
    assert "has no groups" not in said, said
    assert "redirect" in said, said


def test_a_redirected_resume_probe_decides_nothing() -> None:
    """The resume probe (POST to the default conversation's stream) answered with a redirect was taken to mean the
    server keeps background runs resumable (anything but a 503 or a missing route), for the life of the process."""

    async def main() -> tuple[LettaError | bool, bool | None]:
        async with client_of({"on": False, "posts": True}) as client:
            try:
                said: LettaError | bool = await client.has_resume()
            except LettaError as error:
                said = error
            return said, client.resumable

    said, kept = asyncio.run(main())
    assert isinstance(said, LettaError) and said.redirected, said
    assert kept is None  # asked again next time
