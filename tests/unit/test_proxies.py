"""One proxy rule for every connection the bridge makes (bridge/proxies.py): which variable a destination takes,
what a value means, and that Slack's calls and file downloads take it as Letta's requests do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from bridge.config import Settings
from bridge.domain import SharedFile
from bridge.proxies import VARIABLES, ProxyError, check_environment, normal, passwords, proxy_for
from bridge.settings_secrets import secrets
from bridge.slack.files import FileFetcher
from bridge.slack.metered import MeteredSlackClient


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (*VARIABLES, "no_proxy", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.mark.parametrize(("value", "means"), [
    ("proxy.corp:3128", "http://proxy.corp:3128"),  # curl's reading of a value without a scheme
    ("  http://proxy.corp:3128  ", "http://proxy.corp:3128"),
    ("https://proxy.corp", "https://proxy.corp"),
    ("HTTP://Proxy.Corp:8080", "http://proxy.corp:8080"),
    ("http://u:p%40ss@10.0.0.1:3128", "http://u:p%40ss@10.0.0.1:3128"),
    ("", None),
    ("   ", None),
])
def test_a_proxy_value_means_what_curl_takes_it_to_mean(value: str, means: str | None) -> None:
    assert normal("HTTPS_PROXY", value) == means


@pytest.mark.parametrize(("value", "said"), [
    ("socks5://user:hunter2@10.0.0.1:1080", "names a socks5:// proxy"),
    ("socks5h://10.0.0.1:1080", "names a socks5h:// proxy"),
    ("http://user:hunter2@proxy.corp:port", "is not a proxy address"),
    ("http://user:hunter2@:3128", "is not a proxy address"),
    ("http://", "has no host"),
    ("http://[::1", "is not a proxy address"),
    ("not a url", "has a space in its host"),  # found by a review (revAW): taken as http://not a url
    ("http://user:hunter2@proxy corp:3128", "has a space in its host"),
])
def test_an_unusable_proxy_value_is_named_by_its_variable_and_never_shows_its_password(value: str, said: str) -> None:
    with pytest.raises(ProxyError) as caught:
        normal("HTTPS_PROXY", value)
    message = str(caught.value)
    assert message.startswith("HTTPS_PROXY ") and said in message and "http://host:port" in message
    assert "hunter2" not in message


def test_check_environment_lists_each_unusable_variable() -> None:
    environ = {"HTTPS_PROXY": "socks5://10.0.0.1:1080", "HTTP_PROXY": "proxy.corp:3128", "ALL_PROXY": "http://:1"}
    problems = check_environment(environ)
    assert [line.split()[0] for line in problems] == ["HTTPS_PROXY", "ALL_PROXY"]
    assert check_environment({"HTTP_PROXY": "proxy.corp:3128", "NO_PROXY": "*"}) == []


def test_each_destination_takes_its_schemes_proxy_then_all_proxy_and_no_proxy_exempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert proxy_for("https://slack.com/api/") is None
    monkeypatch.setenv("HTTP_PROXY", "plain:3128")
    assert proxy_for("http://letta.internal:8283") == "http://plain:3128"
    assert proxy_for("https://slack.com/api/") == "http://plain:3128", "an https destination falls back to it"
    monkeypatch.setenv("ALL_PROXY", "http://every:3128")
    assert proxy_for("https://slack.com/api/") == "http://every:3128"
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    assert proxy_for("https://slack.com/api/") == "http://secure:3128"
    assert proxy_for("wss://wss-primary.slack.com/link") == "http://secure:3128"
    assert proxy_for("ws://127.0.0.1:8283/ws") == "http://plain:3128"
    assert proxy_for("http://letta.internal:8283") == "http://plain:3128", "never an https destination's proxy"
    monkeypatch.setenv("https_proxy", "http://lower:3128")
    assert proxy_for("https://slack.com/api/") == "http://lower:3128", "the lower-case name wins, as in curl"
    monkeypatch.setenv("NO_PROXY", ".slack.com,letta.internal")
    assert proxy_for("https://slack.com/api/") is None
    assert proxy_for("https://files.slack.com/x") is None
    assert proxy_for("http://letta.internal:8283") is None
    assert proxy_for("https://api.letta.com") == "http://lower:3128"


def test_a_proxys_password_is_one_of_the_secrets_kept_out_of_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://me:p%40ss@proxy.corp:3128")
    assert set(passwords()) == {"p%40ss", "p@ss"}
    settings = Settings(slack_bot_token="xoxb-1", letta_api_key="k")
    assert {"p%40ss", "p@ss"} <= set(secrets(settings))


@asynccontextmanager
async def loopback_proxy(seen: list[bytes], body: bytes, content_type: bytes) -> AsyncIterator[str]:
    """An HTTP proxy on 127.0.0.1 that notes each request line and answers it itself."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (content_type, len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def test_slack_calls_take_the_proxy_and_respect_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk alone would send this call through the proxy although NO_PROXY exempts the host."""
    seen: list[bytes] = []

    async def call(no_proxy: str) -> str:
        async with loopback_proxy(seen, b'{"ok": true, "user_id": "UBOT"}', b"application/json") as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy)
            monkeypatch.setenv("NO_PROXY", no_proxy)
            client = MeteredSlackClient(token="xoxb-1", base_url="http://slack.invalid/api/", timeout=5)
            try:
                return str((await client.auth_test())["user_id"])
            except Exception as exc:  # exempt: asked directly, and there is no such host
                return type(exc).__name__

    assert asyncio.run(call("example.org")) == "UBOT"
    assert seen == [b"POST http://slack.invalid/api/auth.test HTTP/1.1"]
    assert asyncio.run(call("slack.invalid")) != "UBOT"
    assert len(seen) == 1, "the exempt call did not go to the proxy"


def test_file_downloads_take_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a proxied deployment posted replies but could not fetch a shared file."""
    seen: list[bytes] = []

    async def fetch() -> bytes:
        async with loopback_proxy(seen, b"hello", b"text/plain") as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy)
            shared = SharedFile(id="F1", name="a.txt", mimetype="text/plain", size=5, url="http://files.invalid/a.txt")
            return await FileFetcher("xoxb-1", timeout=5, hosts=("files.invalid",)).fetch(shared, 100)

    assert asyncio.run(fetch()) == b"hello"
    assert seen == [b"GET http://files.invalid/a.txt HTTP/1.1"]
