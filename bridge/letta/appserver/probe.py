"""Where a Letta App Server is and what it says it is: its HTTP and WebSocket URLs from LETTA_BASE_URL, and
`GET /app-server-info` (version, protocol, capabilities), asked over HTTP, not the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from bridge import __version__
from bridge.letta.answers import Answer, get_once
from bridge.letta.appserver.wire import PROTOCOL_VERSION, AppServerInfoResponse
from bridge.letta.errors import ENV_KEY, KeyOrigin, Kind, LettaError


@dataclass(frozen=True)
class ServerInfo:
    """What `GET /app-server-info` said. Reaching it at all means the bridge's token (if any) was accepted."""

    version: str
    protocol_version: int | None
    backend: str | None
    capabilities: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol_supported(self) -> bool:
        return self.protocol_version == PROTOCOL_VERSION


def endpoints(base_url: str) -> tuple[str, str]:
    """(http base, WebSocket URL) for LETTA_BASE_URL given as ws(s)://host:port[/ws] or http(s)://host:port."""
    parts = urlsplit(base_url.rstrip("/"))
    secure = parts.scheme in ("wss", "https")
    path = parts.path[: -len("/ws")] if parts.path.endswith("/ws") else parts.path
    http = urlunsplit(("https" if secure else "http", parts.netloc, path, "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, path + "/ws", "", ""))
    return http, ws


async def describe(
    http_url: str, api_key: str | None, within: float, base_url: str, key_origin: KeyOrigin = ENV_KEY
) -> ServerInfo:
    """GET /app-server-info: version and protocol; a 401 means LETTA_API_KEY is wrong or missing, a 404
    that this is no App Server (the REST servers have no such route)."""
    headers = {"User-Agent": f"letta-slack-bridge/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    response = await get_once(http_url + "/app-server-info", headers, within, base_url)
    status = response.status
    if status >= 400:
        kind = {401: Kind.UNAUTHORIZED, 403: Kind.UNAUTHORIZED, 404: Kind.ROUTE_MISSING}.get(status)
        detail = _error_text(response) or response.reason
        error = LettaError(kind or Kind.SERVER_ERROR, detail, status=status, base_url=base_url, key_origin=key_origin)
        error.app_server = kind == Kind.UNAUTHORIZED  # a 401 here: only an App Server has this route (README §13)
        raise error
    try:
        info = AppServerInfoResponse.model_validate(response.json())
    except (ValueError, ValidationError):
        raise LettaError(Kind.BAD_RESPONSE, "app-server-info", status=status, base_url=base_url) from None
    return ServerInfo(info.letta_code_version or "unknown", info.protocol_version, info.backend, info.capabilities)


def _error_text(response: Answer) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or "")
