"""`/letta setup`'s check never follows a redirect off the URL it was given: a server the admin controls answering
every path with a redirect to an internal address took the check there, and up to 200 characters of that page
came back in the form's error (docs/security.md: paths under the URL only)."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.clients import letta_client, letta_kind
from bridge.config import Settings
from bridge.metrics import Metrics
from bridge.workspaces import Workspaces


def test_a_redirect_cannot_make_the_setup_check_read_another_page_of_an_internal_host() -> None:
    """The query/fragment rule keeps the check on paths under the URL; a server the admin controls answering
    every path with a redirect to `http://<internal>/latest/meta-data/creds` took it there all the same, and up
    to 200 characters of that page came back in the form's error."""

    async def main() -> tuple[list[str], str | None]:
        asked: list[str] = []

        async def internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            asked.append(head.split(b" ")[1].decode())
            secret = b"AKIA-INTERNAL-SECRET"
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(secret), secret))
            await writer.drain()
            writer.close()

        inner = await asyncio.start_server(internal, "127.0.0.1", 0)
        inner_port = inner.sockets[0].getsockname()[1]

        async def redirector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            target = f"http://127.0.0.1:{inner_port}/latest/meta-data/creds".encode()
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                         % target)
            await writer.drain()
            writer.close()

        outer = await asyncio.start_server(redirector, "127.0.0.1", 0)
        outer_port = outer.sockets[0].getsockname()[1]
        settings = Settings(slack_client_id="1.2", slack_client_secret="s")

        async def make(s: Settings) -> Any:
            return letta_client(s, None, await letta_kind(s))

        workspaces = Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]
        problem = await workspaces.save_letta("T1", f"http://127.0.0.1:{outer_port}", "k", "U1")
        inner.close()
        outer.close()
        return asked, problem

    asked, problem = asyncio.run(main())
    assert problem is not None
    assert "AKIA-INTERNAL-SECRET" not in problem, problem
    assert asked == [], f"the internal host was asked for {asked}"
    assert "a redirect to http://127.0.0.1:" in problem and "which the bridge does not follow" in problem, problem
