"""/letta setup's check (Workspaces.save_letta) answers within Slack's 3 seconds, whatever the server does: finding
out its kind counts against the same budget, and a server that is not saved leaves nothing behind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bridge.clients import letta_client, letta_kind
from bridge.config import Settings
from bridge.metrics import Metrics
from bridge.workspaces import SETUP_CHECK_SECONDS, Workspaces


def test_a_server_that_accepts_and_never_answers_is_refused_within_slacks_three_seconds() -> None:
    """Before, the server's kind was probed (up to LETTA_CONNECT_TIMEOUT, 10 s by default) before the check's
    2.5 s began: Slack showed its own error, and the probe held up every other workspace's first turn."""

    async def main() -> tuple[float, str | None, int]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings(slack_client_id="1.2", slack_client_secret="s", letta_connect_timeout=6.0)

        async def make(s: Settings) -> Any:
            return letta_client(s, None, await letta_kind(s))

        workspaces = Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]
        started = time.monotonic()
        problem = await workspaces.save_letta("T1", f"http://127.0.0.1:{port}", "k", "U1")
        took = time.monotonic() - started
        kept = len(workspaces.letta._servers)
        server.close()
        return took, problem, kept

    took, problem, kept = asyncio.run(main())
    assert took < SETUP_CHECK_SECONDS + 0.4, f"answered after {took:.1f} s"
    assert problem is not None and "did not answer within" in problem
    assert kept == 0, "a server that was not saved has no client kept"


def test_a_url_with_a_password_and_a_key_is_refused_in_words() -> None:
    """A request carries one Authorization header: aiohttp refuses a URL's user and password beside the key's
    (a ValueError, which reached Slack as an unexpected error)."""

    async def make(s: Settings) -> Any:
        raise AssertionError("nothing is asked of such a server")

    settings = Settings(slack_client_id="1.2", slack_client_secret="s")
    workspaces = Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]
    problem = asyncio.run(workspaces.save_letta("T1", "https://me:pw-never-shown@letta.example", "k", "U1"))
    assert problem is not None and "carries a user and password" in problem and "Nothing was saved" in problem
    assert "pw-never-shown" not in problem


def test_an_address_the_settings_would_refuse_is_refused_by_setup_too() -> None:
    async def make(s: Settings) -> Any:
        raise AssertionError("nothing is asked of such a server")

    settings = Settings(slack_client_id="1.2", slack_client_secret="s")
    workspaces = Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]
    for url in ("letta.example.com", "ftp://letta.example.com", "https://letta.example.com:port"):
        problem = asyncio.run(workspaces.save_letta("T1", url, "", "U1"))
        assert problem is not None and "full address" in problem, url


def test_a_server_url_ending_in_v1_is_refused_as_the_settings_refuse_it() -> None:
    """The bridge adds /v1 itself: a workspace's `https://letta.example.com/v1` went on to be asked and said
    something else (a route missing, or a refused key) instead of what to type."""

    async def make(s: Settings) -> Any:
        raise AssertionError("nothing is asked of such a server")

    settings = Settings(slack_client_id="1.2", slack_client_secret="s")
    workspaces = Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]
    for url in ("https://letta.example.com/v1", "https://letta.example.com/v1/"):
        problem = asyncio.run(workspaces.save_letta("T1", url, "k", "U1"))
        assert problem is not None and "ends in /v1" in problem and "address without it" in problem, problem


async def internal_host(asked: list[str]) -> asyncio.Server:
    """A host on the bridge's own network that answers any path with a secret (a cloud metadata service, say),
    noting each path it is asked for."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        asked.append(head.split(b" ")[1].decode())
        secret = b"AKIA-INTERNAL-SECRET"
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(secret), secret))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def oauth_workspaces() -> Workspaces:
    settings = Settings(slack_client_id="1.2", slack_client_secret="s")

    async def make(s: Settings) -> Any:
        return letta_client(s, None, await letta_kind(s))

    return Workspaces(settings, store=None, installs=None, metrics=Metrics(), make_letta=make)  # type: ignore[arg-type]


def test_a_url_with_a_query_or_fragment_cannot_read_another_page_of_an_internal_host() -> None:
    """Before, `http://internal/secret?` made the check's `GET <url>/v1/health/` a GET of /secret (the rest became
    the query), and up to 200 characters of its answer came back in the form's error: a workspace admin of a
    multi-workspace bridge could read pages on the bridge's own network (a cloud metadata service, say)."""

    async def main() -> tuple[list[str], list[str | None]]:
        asked: list[str] = []
        server = await internal_host(asked)
        port = server.sockets[0].getsockname()[1]
        workspaces = oauth_workspaces()
        problems = []
        for tail in ("/latest/meta-data/creds?", "/latest/meta-data/creds#", "/creds?x=1"):
            problems.append(await workspaces.save_letta("T1", f"http://127.0.0.1:{port}{tail}", "", "U1"))
        server.close()
        return asked, problems

    asked, problems = asyncio.run(main())
    assert all(p is not None and "AKIA-INTERNAL-SECRET" not in p for p in problems), problems
    assert asked == [], f"the internal host was asked for {asked}"
    assert all(p is not None and "query" in p for p in problems), problems


def test_a_redirect_cannot_make_the_setup_check_read_another_page_of_an_internal_host() -> None:
    """The query/fragment rule keeps the check on paths under the URL; a server the admin controls answering
    every path with a redirect to `http://<internal>/latest/meta-data/creds` took it there all the same, and up
    to 200 characters of that page came back in the form's error. No redirect is followed now."""

    async def main() -> tuple[list[str], str | None]:
        asked: list[str] = []
        inner = await internal_host(asked)
        inner_port = inner.sockets[0].getsockname()[1]

        async def redirector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            target = f"http://127.0.0.1:{inner_port}/latest/meta-data/creds".encode()
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                         % target)
            await writer.drain()
            writer.close()

        outer = await asyncio.start_server(redirector, "127.0.0.1", 0)
        problem = await oauth_workspaces().save_letta("T1", f"http://127.0.0.1:{outer.sockets[0].getsockname()[1]}",
                                                      "k", "U1")
        inner.close()
        outer.close()
        return asked, problem

    asked, problem = asyncio.run(main())
    assert problem is not None and "AKIA-INTERNAL-SECRET" not in problem, problem
    assert asked == [], f"the internal host was asked for {asked}"
    assert "a redirect to http://127.0.0.1:" in problem and "which the bridge does not follow" in problem, problem
