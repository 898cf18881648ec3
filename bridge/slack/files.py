"""Files shared in Slack: read off an event (`shared_files`, pure), and fetched with the bot token (`FileFetcher`).

Slack serves a file's bytes at its `url_private_download` to a request carrying the bot token as
`Authorization: Bearer` (scope `files:read`). Without a token Slack's answer is its sign-in page, an HTML 200, not
an error (reference/slack/files.md), so an HTML answer for a file that is not HTML counts as refused.

The token goes only to Slack's own file hosts (`slack_file_host`): a file object's `url_private` is not always
Slack's (a remote file, from `files.remote.add` or a Google Drive share, carries its external address there, and
any app in the workspace can make one that points anywhere, an internal address included). A redirect off those
hosts is followed only to an https address, without the token (a signed storage or CDN address).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bridge.domain import SharedFile
from bridge.proxies import proxy_for

log = logging.getLogger(__name__)

FETCH_SECONDS = 30.0
CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Where Slack serves files (commercial and GovSlack), over https on its default port only.
SLACK_FILE_DOMAINS = ("slack.com", "slack-gov.com")
FILE_PATHS = ("/files-pri/", "/files-tmb/")  # a file's address on another of Slack's hosts (files-origin, …)
NOT_SLACKS = "it is not on Slack's file servers"


TOO_BIG = "it is too big"


class FetchError(Exception):
    """A file that could not be fetched; `reason` is plain words for the thread ("too big", "not readable")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def slack_file_host(url: str, hosts: Iterable[str] = ()) -> bool:
    """Whether the bot token may go to `url`: https on Slack's file domains (port 443, no user part), or a host the
    settings name (`host:port`: the fake Slack's in tests)."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return False
    if "@" in parts.netloc or not hostname:
        return False
    if parts.scheme in ("http", "https") and parts.netloc in set(hosts):
        return True
    # Only the file hosts, never Slack's Web API (slack.com/api/…, which takes a GET as the bot): a remote file's
    # address naming it would make the bridge call a method with the bot's token.
    path = URL(url).path  # as aiohttp will ask for it: dot segments resolved, escapes decoded
    file_host = hostname in {"files." + domain for domain in SLACK_FILE_DOMAINS} or (
        _on_slack(hostname) and path.startswith(FILE_PATHS)
    )
    return parts.scheme == "https" and port in (None, 443) and file_host and "/api/" not in path


def redirect_allowed(url: str, hosts: Iterable[str] = ()) -> bool:
    """Where a download may be redirected: Slack's file hosts, or any https address (Slack may hand a download on to
    a storage or CDN host with a signed address), the token dropped once it leaves the origin; never plain http."""
    return slack_file_host(url, hosts) or urlsplit(url).scheme == "https"


def file_hosts(api_url: str) -> tuple[str, ...]:
    """The host of SLACK_API_URL when it is not Slack's own (a fake Slack in tests serves files there too): Slack's
    own API host is no file host."""
    return () if _on_slack(urlsplit(api_url).hostname or "") else (urlsplit(api_url).netloc,)


def _on_slack(hostname: str) -> bool:
    """One of Slack's own hosts (commercial or GovSlack)."""
    return any(hostname == domain or hostname.endswith("." + domain) for domain in SLACK_FILE_DOMAINS)


def shared_files(event: dict[str, Any]) -> tuple[SharedFile, ...]:
    """The files of a message event (`files`), in order; entries that are not file objects are skipped. A Slack
    Connect file arrives as `{"id", "file_access": "check_file_info"}` only: kept, with no url to fetch."""
    found: list[SharedFile] = []
    files = event.get("files")
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict) or not _str(item.get("id")):
            continue
        url = _str(item.get("url_private_download")) or _str(item.get("url_private"))
        found.append(
            SharedFile(
                id=_str(item.get("id")),
                name=_str(item.get("name")) or _str(item.get("title")) or _str(item.get("id")),
                mimetype=_str(item.get("mimetype")),
                filetype=_str(item.get("filetype")),
                size=_int(item.get("size")),
                permalink=_str(item.get("permalink")),
                url="" if item.get("file_access") == "check_file_info" else url,
            )
        )
    return tuple(found)


class FileFetcher:
    """Downloads a shared file with the bot token, never more than `limit` bytes; async (aiohttp), so nothing waits
    on the event loop. `token` is read at each fetch: in OAuth mode the workspace's token is renewed. `hosts` are
    allowed beside Slack's own file hosts (tests: the fake Slack's `host:port`)."""

    def __init__(self, token: Any, timeout: float = FETCH_SECONDS, hosts: Iterable[str] = ()) -> None:
        self._token = token  # a str, or a callable returning the current one
        self._timeout = timeout
        self._hosts = tuple(hosts)

    def _bearer(self) -> str:
        token = self._token() if callable(self._token) else self._token
        return str(token or "")

    async def fetch(self, file: SharedFile, limit: int) -> bytes:
        if not file.url:
            raise FetchError("Slack did not share it with the bot")
        if file.size > limit:
            raise FetchError(TOO_BIG)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                return await self._get(session, file, limit)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("file fetch failed file=%s error=%s", file.id, type(exc).__name__)
            raise FetchError("Slack did not serve it") from exc

    async def _get(self, session: aiohttp.ClientSession, file: SharedFile, limit: int) -> bytes:
        """GET the file with the token, following redirects one hop at a time, each checked before it is asked."""
        url = file.url
        if not slack_file_host(url, self._hosts):
            log.warning("file fetch refused: not on a Slack file host file=%s", file.id)
            raise FetchError(NOT_SLACKS)
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(url, headers=headers, proxy=proxy_for(url), allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECTS and location:
                    after = URL(url).join(URL(location))
                    if after.origin() != URL(url).origin():
                        headers = {}  # as aiohttp does: the token stays with the origin it was meant for
                    if not redirect_allowed(str(after), self._hosts):
                        log.warning("file fetch refused: redirected off Slack's file hosts file=%s", file.id)
                        raise FetchError(NOT_SLACKS)
                    url = str(after)
                    continue
                return await _body(response, file, limit)
        raise FetchError("Slack did not serve it")


async def _body(response: aiohttp.ClientResponse, file: SharedFile, limit: int) -> bytes:
    """The answer's bytes, at most `limit`; a refusal (an error status, Slack's sign-in page) in plain words."""
    if response.status != 200:
        log.info("file fetch refused file=%s status=%s", file.id, response.status)
        refused = response.status in (401, 403)
        raise FetchError("the bot may not read it" if refused else "Slack did not serve it")
    served = response.content_type.lower()
    if served == "text/html" and not file.mimetype.lower().startswith("text/html"):
        log.info("file fetch got a sign-in page file=%s", file.id)
        raise FetchError("the bot may not read it")
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body.extend(chunk)
        if len(body) > limit:
            raise FetchError(TOO_BIG)
    if served == "text/html" and file.size and len(body) != file.size:  # an HTML file, or the sign-in page?
        log.info("file fetch got a sign-in page file=%s", file.id)
        raise FetchError("the bot may not read it")
    return bytes(body)
