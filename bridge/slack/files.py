"""Files shared in Slack: read off an event (`shared_files`, pure), and fetched with the bot token (`FileFetcher`).

Slack serves a file's bytes at its `url_private_download` to a request carrying the bot token as
`Authorization: Bearer` (scope `files:read`). Without a token Slack's answer is its sign-in page, an HTML 200, not
an error (reference/slack/files.md), so an HTML answer for a file that is not HTML counts as refused.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bridge.domain import SharedFile
from bridge.proxies import proxy_for

log = logging.getLogger(__name__)

FETCH_SECONDS = 30.0
CHUNK = 64 * 1024


class FetchError(Exception):
    """A file that could not be fetched; `reason` is plain words for the thread ("too big", "not readable")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


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
    on the event loop. `token` is read at each fetch: in OAuth mode the workspace's token is renewed."""

    def __init__(self, token: Any, timeout: float = FETCH_SECONDS) -> None:
        self._token = token  # a str, or a callable returning the current one
        self._timeout = timeout

    def _bearer(self) -> str:
        token = self._token() if callable(self._token) else self._token
        return str(token or "")

    async def fetch(self, file: SharedFile, limit: int) -> bytes:
        if not file.url:
            raise FetchError("Slack did not share it with the bot")
        if file.size > limit:
            raise FetchError("it is too big")
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(file.url, headers=headers, proxy=proxy_for(file.url)) as response,
            ):
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
                        raise FetchError("it is too big")
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("file fetch failed file=%s error=%s", file.id, type(exc).__name__)
            raise FetchError("Slack did not serve it") from exc
