"""files.slack.com for the fake Slack: a shared file's bytes at its `url_private_download`, served as
reference/slack/files.md says Slack does (the bot token as `Authorization: Bearer`; a wrong or missing token gets
the HTML sign-in page with status 200; a forbidden file 403, an unknown one 404)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SIGN_IN_PAGE = b'<!DOCTYPE html><html lang="en-US"><head><title>Slack</title></head><body>Sign in</body></html>'
_ids = itertools.count(1)


@dataclass
class Served:
    data: bytes
    mimetype: str
    status: int = 200
    token: str | None = None  # only this token may read it (another workspace's file, say); None: the bot's


class SlackFileServer:
    """Mixed into FakeSlack, which provides base_url, team_id, bot_token, _issued and _lock."""

    base_url: str
    team_id: str
    bot_token: str
    _issued: dict[str, Any]

    def _init_files(self) -> None:
        self.served: dict[str, Served] = {}
        self.file_fetches: list[tuple[str, str | None]] = []  # (file id, the bearer token or None)

    def add_file(
        self,
        name: str,
        data: bytes,
        mimetype: str,
        filetype: str = "",
        status: int = 200,
        size: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Serve a file and return its file object, as an event's `files` entry carries it."""
        file_id = f"F{next(_ids):08d}"
        self.served[file_id] = Served(data, mimetype, status, token)
        url = f"{self.base_url}files-pri/{self.team_id}-{file_id}/download/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype or name.rsplit(".", 1)[-1],
            "size": len(data) if size is None else size,
            "mode": "hosted",
            "url_private": url.replace("/download/", "/"),
            "url_private_download": url,
            "permalink": f"https://acme.slack.com/files/U0123ABCD/{file_id}/{name}",
        }

    async def _handle_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["key"].rsplit("-", 1)[-1]
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        self.file_fetches.append((file_id, token))
        served = self.served.get(file_id)
        if served is None:
            return web.Response(status=404, text="not found")
        allowed = {served.token} if served.token else {self.bot_token, *self._issued}
        if token not in allowed:
            return web.Response(status=200, body=SIGN_IN_PAGE, content_type="text/html")
        if served.status != 200:
            return web.Response(status=served.status, text="forbidden")
        return web.Response(status=200, body=served.data, content_type=served.mimetype)
