"""The Letta App Server behind the `LettaClient` face that the rest of the bridge asks (configure, targets,
checks, threads, the chooser), and how the bridge tells the server kinds apart.

Only what those callers need is translated: the version (`/app-server-info`), agents, a conversation per
Slack thread. The App Server has no groups (`ROUTE_MISSING`, as a REST server without group routes says), no
background runs. Sends go through `AppServerRunner` (appserver_runner.py), which speaks `AppServerClient`
itself. A Stop from Slack takes back this process's message to the conversation (`cancel_conversation`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal
from urllib.parse import urlsplit

from bridge import __version__
from bridge.letta.answers import Answer, get_once, retry_after
from bridge.letta.appserver import ServerInfo, endpoints
from bridge.letta.appserver.metered import MeteredAppServerClient
from bridge.letta.client import LettaClient
from bridge.letta.errors import ENV_KEY, KeyOrigin, Kind, LettaError
from bridge.letta.models import Agent, Conversation, Group, Health
from bridge.letta.own_runs import OwnSend
from bridge.letta.paging import LIST_CAP
from bridge.metrics import Metrics

log = logging.getLogger(__name__)

ServerKind = Literal["app-server", "rest"]
NO_GROUPS = "the Letta App Server has no groups"


def kind_by_scheme(base_url: str) -> ServerKind | None:
    """ws:// and wss:// are App Servers; for http(s):// the server has to be asked (`server_kind`)."""
    scheme = urlsplit(base_url).scheme.lower()
    return "app-server" if scheme in ("ws", "wss") else None


async def server_kind(
    base_url: str, api_key: str | None = None, within: float = 5.0, connect: float | None = None
) -> ServerKind:
    """`told_kind`; a server that does not answer at all is taken for REST (its own checks say why)."""
    told = await told_kind(base_url, api_key, within, connect)
    return "rest" if isinstance(told, LettaError) else told


async def told_kind(
    base_url: str, api_key: str | None = None, within: float = 5.0, connect: float | None = None
) -> ServerKind | LettaError:
    """An App Server answers `GET /app-server-info` (200, or its own 401 to a wrong token); a REST server has no
    such route. A server that does not answer, or whose answer says it is in trouble (`in_trouble`: a proxy's 502
    while the App Server behind it is down), tells nothing: the failure is returned. Timed as `probe_timeout`."""
    by_scheme = kind_by_scheme(base_url)
    if by_scheme is not None:
        return by_scheme
    http, _ = endpoints(base_url)
    headers = {"User-Agent": f"letta-slack-bridge/{__version__}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        response = await get_once(http + "/app-server-info", headers, within, base_url, connect)
    except LettaError as error:
        return error
    if response.status == 200 and _is_info(response):
        return "app-server"
    if response.status == 401 and _app_server_refusal(response):
        return "app-server"
    trouble = in_trouble(response, base_url)
    return "rest" if trouble is None else trouble


TROUBLE_STATUSES = frozenset({408, 429})  # besides every 5xx: the server (or its proxy) could not answer now


def in_trouble(response: Answer, base_url: str) -> LettaError | None:
    """An answer that says nothing of the kind: the server or the proxy before it is overloaded, down or slow
    (5xx, 429, 408). Said as that server unreachable (rate-limiting for a 429), its status in words only: nothing
    was sent, so no send's outcome is unknown."""
    status = response.status
    if status < 500 and status not in TROUBLE_STATUSES:
        return None
    said = f"it answered HTTP {status} to GET /app-server-info"
    if status == 429:
        error = LettaError(Kind.RATE_LIMITED, said, status=status, base_url=base_url)
        error.retry_after = retry_after(response.headers.get("retry-after"))
        return error
    return LettaError(Kind.UNREACHABLE, said, base_url=base_url)


def _body(response: Answer) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _is_info(response: Answer) -> bool:
    body = _body(response)
    return isinstance(body, dict) and ("protocol_version" in body or "letta_code_version" in body)


def _app_server_refusal(response: Answer) -> bool:
    """The App Server refuses a token as `{"error": "missing|invalid websocket bearer token"}`
    (app-server/auth-http-app-server-info-*.json); a REST server with a password answers every route with
    `{"detail": "Unauthorized"}` (0.16.8/auth-missing.json), so a 401 alone says nothing about the kind."""
    body = _body(response)
    return isinstance(body, dict) and "bearer token" in str(body.get("error", ""))


class AppServerLetta(LettaClient):
    """`LettaClient` for an App Server: one `AppServerClient` (one socket per process, metered) under the same
    methods."""

    app_server = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        metrics: Metrics | None = None,
        tools: bool = False,
        key_origin: KeyOrigin = ENV_KEY,
        **options: float,
    ) -> None:
        http, _ = endpoints(base_url)
        # Its HTTP session is never made: the App Server has no REST route.
        super().__init__(http, api_key, key_origin=key_origin)
        self.base_url = base_url.rstrip("/")
        self.app = MeteredAppServerClient(
            base_url,
            api_key,
            key_origin=key_origin,
            request_timeout=float(options.get("request_timeout", 15.0)),
            connect_timeout=float(options.get("connect_timeout", 10.0)),
            tools=tools,
        )
        if metrics is not None:
            self.app.metrics = metrics
        self.keyed = bool(api_key)
        self.conversations = True
        self.resumable = False
        self.info: ServerInfo | None = None

    async def aclose(self, wait: float = 0.0) -> None:
        """Close the socket once no turn runs, waiting up to `wait` seconds; then under whatever still runs."""
        try:
            await self.app.aclose(wait=wait, force=True)
        finally:
            await super().aclose()

    async def describe(self) -> ServerInfo:
        self.info = await self.app.describe()
        return self.info

    async def health(self) -> Health:
        return Health(version=(await self.describe()).version, status="ok")

    async def list_agents(self, limit: int = 50, after: str | None = None) -> list[Agent]:
        listed = await self.app.list_agents(limit, after)
        return [Agent(id=a.id, name=a.name, description=a.description) for a in listed]

    async def all_agents(self, cap: int = LIST_CAP) -> list[Agent]:
        return [Agent(id=a.id, name=a.name, description=a.description) for a in await self.app.all_agents(cap)]

    async def get_agent(self, agent_id: str) -> Agent:
        """`agent_retrieve`: an agent past the first LIST_CAP of the list is found too (README §3)."""
        a = await self.app.retrieve_agent(agent_id)
        return Agent(id=a.id, name=a.name, description=a.description)

    async def get_group(self, group_id: str) -> Group:
        raise LettaError(Kind.ROUTE_MISSING, NO_GROUPS, base_url=self.base_url)

    async def list_groups(self, limit: int = 50, after: str | None = None) -> list[Group]:
        raise LettaError(Kind.ROUTE_MISSING, NO_GROUPS, base_url=self.base_url)

    async def all_groups(self, cap: int = LIST_CAP) -> list[Group]:
        raise LettaError(Kind.ROUTE_MISSING, NO_GROUPS, base_url=self.base_url)

    async def has_conversations(self) -> bool:
        return True

    async def has_resume(self) -> bool:
        return False

    async def cancel_conversation(self, conversation_id: str, agent_id: str | None = None) -> dict[str, str]:
        """This process's message to the conversation taken back (`AppServerClient.abort`: out of the queue, or
        its run aborted; never another turn): {conversation: "cancelled"}, or {} when nothing of it ran. The
        server answers at once; the turn ends (`cancelled`) when the model call in flight returns (README §8)."""
        if agent_id is None:
            raise LettaError(Kind.INVALID, "an App Server turn is aborted with its agent", base_url=self.base_url)
        aborted = await self.app.abort(agent_id, conversation_id)
        return {conversation_id: "cancelled"} if aborted else {}

    async def cancel_agent(self, agent_id: str, sends: Sequence[OwnSend] = ()) -> dict[str, str]:
        """Every turn on the App Server runs in a conversation (never `default` for channels): nothing to abort
        by agent alone."""
        raise LettaError(Kind.INVALID, "the App Server aborts conversations, not agents", base_url=self.base_url)

    async def create_conversation(self, agent_id: str, summary: str | None = None) -> Conversation:
        """A conversation of the thread's own, the thread's key in its summary (never the agent's `default`)."""
        made = await self.app.create_conversation(agent_id, summary or "")
        return Conversation(id=made.id, agent_id=agent_id, summary=made.summary)
