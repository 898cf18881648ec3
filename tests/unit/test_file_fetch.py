"""Where the bot token goes when a shared file is fetched: only to Slack's own file hosts.

A file object's `url_private` is not always Slack's: a remote file (`files.remote.add`, a Google Drive file) carries
its external address there, and any app in the workspace can make one pointing anywhere. Before, the bridge sent
`Authorization: Bearer <bot token>` to whatever address the file object named.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from bridge.config import Settings
from bridge.domain import SharedFile
from bridge.slack.files import FetchError, FileFetcher, file_hosts, redirect_allowed, slack_file_host
from tests.loopback import serving

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16


@asynccontextmanager
async def server(handler: web.RequestHandler) -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server answering every GET with `handler`; yields its netloc and the Authorization headers seen."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        return await handler(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serving(app) as port:
        yield f"127.0.0.1:{port}", seen


async def png(_request: web.Request) -> web.Response:
    return web.Response(body=PNG, content_type="image/png")


def shared(url: str) -> SharedFile:
    return SharedFile(id="F1", name="chart.png", mimetype="image/png", size=len(PNG), url=url)


def test_slack_file_hosts() -> None:
    assert slack_file_host("https://files.slack.com/files-pri/T1-F1/download/a.png")
    assert slack_file_host("https://files.slack-gov.com/files-pri/T1-F1/a.png")
    assert not slack_file_host("http://files.slack.com/files-pri/T1-F1/a.png")  # the token in the clear
    assert not slack_file_host("https://files.slack.com:8443/a.png")
    assert not slack_file_host("https://files.slack.com@evil.example/a.png")
    assert not slack_file_host("https://files.slack.com.evil.example/a.png")
    assert not slack_file_host("https://evilslack.com/a.png")
    assert not slack_file_host("https://docs.google.com/document/d/1")
    assert not slack_file_host("http://169.254.169.254/latest/meta-data/")
    assert not slack_file_host("https://[::1/")
    assert slack_file_host("http://127.0.0.1:9000/files-pri/a.png", ("127.0.0.1:9000",))  # the fake Slack's
    assert slack_file_host("https://files-origin.slack.com/files-pri/T1-F1/a.png")
    assert not slack_file_host("https://acme.slack.com/archives/C1/p1")


def test_the_token_never_goes_to_slacks_web_api_nor_over_plain_http() -> None:
    """A remote file whose address is a Web API method (a GET with its arguments in the query) would be a call made
    as the bot: `chat.delete`, or `conversations.history` of a private channel inlined for the agents. Slack's own
    API host (SLACK_API_URL's default) was allowed as a file host, over http too."""
    hosts = file_hosts(Settings.model_fields["slack_api_url"].default)
    assert hosts == ()
    for url in (
        "https://slack.com/api/chat.delete?channel=C0GENERAL&ts=1700000000.000100",
        "https://files.slack.com/api/conversations.history?channel=G0SECRET",
        "https://files-origin.slack.com/files-pri/T1-F1/../../api/auth.test",
        "https://files.slack.com/%61pi/auth.test",
        "http://slack.com/files-pri/T1-F1/x.png",
    ):
        assert not slack_file_host(url, hosts), url
    assert file_hosts("http://127.0.0.1:9000/api/") == ("127.0.0.1:9000",)  # a fake Slack serves its files


def test_the_token_is_not_sent_to_a_host_that_is_not_slacks() -> None:
    async def run() -> tuple[str, list[str]]:
        async with server(png) as (netloc, seen):
            fetcher = FileFetcher("xoxb-secret", timeout=5)  # no extra hosts: only Slack's own
            with pytest.raises(FetchError) as refused:
                await fetcher.fetch(shared(f"http://{netloc}/external.png"), 1000)
            return refused.value.reason, seen

    reason, seen = asyncio.run(run())
    assert seen == [], f"the bridge made a request to a host that is not Slack's: {seen}"
    assert reason == "it is not on Slack's file servers"


def test_a_file_on_an_allowed_host_is_fetched_with_the_token() -> None:
    async def run() -> tuple[bytes, list[str]]:
        async with server(png) as (netloc, seen):
            fetcher = FileFetcher("xoxb-secret", timeout=5, hosts=(netloc,))
            data = await fetcher.fetch(shared(f"http://{netloc}/a"), 1000)
            return data, seen

    data, seen = asyncio.run(run())
    assert data == PNG and seen == ["Bearer xoxb-secret"]


def test_a_redirect_off_slacks_hosts_is_not_followed() -> None:
    async def run() -> tuple[str, list[str], list[str]]:
        async with server(png) as (elsewhere, seen_elsewhere):

            async def redirect(_request: web.Request) -> web.Response:
                raise web.HTTPFound(f"http://{elsewhere}/internal")

            async with server(redirect) as (slack, _seen):
                fetcher = FileFetcher("xoxb-secret", timeout=5, hosts=(slack,))
                with pytest.raises(FetchError) as refused:
                    await fetcher.fetch(shared(f"http://{slack}/a.png"), 1000)
                return refused.value.reason, seen_elsewhere, _seen

    reason, seen_elsewhere, seen_slack = asyncio.run(run())
    assert seen_slack == ["Bearer xoxb-secret"]
    assert seen_elsewhere == [], "a redirect took the fetch off Slack's hosts"
    assert reason == "it is not on Slack's file servers"


def test_a_redirect_may_go_on_to_an_https_storage_address_never_to_plain_http() -> None:
    """Slack may hand a download on to a signed storage or CDN address: followed (without the token, which stays
    with its origin); a plain-http address off Slack's hosts is not (the case above)."""
    assert redirect_allowed("https://files.slack.com/files-pri/T1-F1/download/a.png")
    assert redirect_allowed("https://slack-files-cdn.example-storage.net/T1/F1/a.png?sig=abc")
    assert not redirect_allowed("http://10.0.0.5/latest/meta-data")
    assert not redirect_allowed("ftp://files.slack.com/a.png")
    assert redirect_allowed("http://127.0.0.1:3999/a.png", hosts=("127.0.0.1:3999",))


def test_an_html_file_is_told_from_slacks_sign_in_page_by_its_size() -> None:
    """An HTML file shared (a saved page, an exported report) is served as text/html, as Slack's sign-in page is
    when the bot may not read it: the sign-in page, which is not the file's size, is no file for the agents."""
    page = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"
    report = b"<html><body><h1>Q3 report</h1></body></html>"

    def serve(body: bytes) -> web.RequestHandler:
        async def handler(_request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="text/html")

        return handler

    def html(url: str) -> SharedFile:
        return SharedFile(id="F2", name="report.html", mimetype="text/html", size=len(report), url=url)

    async def run(body: bytes) -> bytes | str:
        async with server(serve(body)) as (netloc, _seen):
            fetcher = FileFetcher("xoxb-secret", timeout=5, hosts=(netloc,))
            try:
                return await fetcher.fetch(html(f"http://{netloc}/report.html"), 1000)
            except FetchError as refused:
                return refused.reason

    assert asyncio.run(run(report)) == report
    assert asyncio.run(run(page)) == "the bot may not read it"
