"""The Slack and Letta clients the settings ask for (metered when given the metrics), and the runners for a Letta
server: built here for `serve`, for each workspace (OAuth mode: one client per Letta server, `LettaServers`) and
for the CLI's checks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.letta.active_runs import CLOCK_SLACK
from bridge.letta.appserver_letta import AppServerLetta, ServerKind, kind_by_scheme, told_kind
from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.errors import ENV_KEY, KeyOrigin, LettaError
from bridge.letta.kind_untold import KindUntold
from bridge.letta.left_runs import LEFT_GOING_WITHIN
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.letta.metered import MeteredLettaClient
from bridge.letta.runners import ServerRunner, group_left
from bridge.logs import mask
from bridge.metrics import Metrics
from bridge.slack.metered import CountedRateLimits, MeteredSlackClient
from bridge.store import Store
from bridge.store.leases import check_lease

log = logging.getLogger(__name__)


def slack_client(settings: Settings, metrics: Metrics | None = None, wait_out_limits: bool = True) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = MeteredSlackClient(token=token, base_url=settings.slack_api_url)
    if metrics is not None:
        client.metrics = metrics
    if wait_out_limits:
        # 429 means Slack did not process the call, so retrying after Retry-After is safe.
        client.retry_handlers.append(CountedRateLimits(client, max_retry_count=3))
    return client


def workspace_key(settings: Settings) -> KeyOrigin:
    """A workspace's own Letta key (OAuth mode), set from Slack: said as such when Letta refuses it, since
    LETTA_API_KEY is not that workspace's key and its admins never see the environment."""
    where = f"the key given to `{settings.slack_command} setup` for this workspace"
    return KeyOrigin(where, "a workspace admin or owner")  # who may run setup (slack/listeners/workspaces.py)


def letta_client(
    settings: Settings,
    metrics: Metrics | None = None,
    kind: ServerKind | None = None,
    lookups: bool = False,
    key_origin: KeyOrigin = ENV_KEY,
) -> LettaClient:
    """The client for LETTA_BASE_URL: a Letta App Server's (ws://, wss://, or `kind` as `letta_kind` found it) or
    a REST server's. `lookups`: the command line's, whose answers wait LETTA_LOOKUP_TIMEOUT, not the read timeout
    agent turns need. `key_origin`: where its key was set (`workspace_key` for a workspace's own)."""
    key = _letta_key(settings)
    read_timeout = settings.letta_lookup_timeout if lookups else settings.letta_read_timeout
    if (kind or kind_by_scheme(settings.letta_base_url)) == "app-server":
        return AppServerLetta(
            settings.letta_base_url,
            api_key=key,
            metrics=metrics,
            key_origin=key_origin,
            connect_timeout=settings.letta_connect_timeout,
            request_timeout=min(read_timeout, 30.0),
        )
    client = MeteredLettaClient(
        settings.letta_base_url,
        api_key=key,
        project=settings.letta_project,
        connect_timeout=settings.letta_connect_timeout,
        read_timeout=read_timeout,
        send_retries=settings.letta_send_retries,
        max_connections=max(100, 2 * settings.max_concurrent_turns),
        retry_base=settings.letta_retry_base_seconds,
        busy_wait=settings.letta_busy_wait_seconds,
        key_origin=key_origin,
    )
    if metrics is not None:
        client.metrics = metrics
    return client


def runner_chooser(settings: Settings, client: LettaClient) -> RunnerChooser:
    """The runners for one Letta server, as the settings ask (the environment's server, or a workspace's)."""
    return RunnerChooser(
        client,
        settings.letta_group_runner,
        patience=settings.letta_recovery_wait_seconds,
        streaming=settings.letta_streaming,
        tokens=settings.letta_stream_tokens,
        max_turns=settings.letta_max_turns,
        app_server_deadline=settings.turn_deadline_seconds,
    )


def _letta_key(settings: Settings) -> str | None:
    """The settings' Letta key, masked in the logs from now on: a workspace's own (OAuth mode) is first seen here,
    after logging was set up."""
    key = settings.letta_api_key.get_secret_value() if settings.letta_api_key else None
    if key:
        mask(key)
    return key


async def letta_kind(settings: Settings, lookups: bool = False) -> ServerKind:
    """Which kind of Letta server LETTA_BASE_URL is: by its scheme, else by asking `GET /app-server-info`; one
    that did not answer is taken for REST."""
    told = await letta_kind_told(settings, lookups)
    return "rest" if isinstance(told, LettaError) else told


async def own_letta_client(settings: Settings, metrics: Metrics | None = None) -> LettaClient:
    """A workspace's own Letta server's client (OAuth mode), its kind asked (`letta_kind_told`). One that did not
    answer gets a stand-in (`KindUntold`: its calls fail as that server unreachable), which LettaServers keeps and
    asks again, said in the log there (`/letta setup`'s check of a URL keeps nothing): taken for a REST server, an
    App Server written http://… would fail every mention (404s) until the bridge restarts."""
    told = await letta_kind_told(settings)
    if isinstance(told, LettaError):
        untold = KindUntold(settings.letta_base_url, told, workspace_key(settings))
        if metrics is not None:
            untold.metrics = metrics
        return untold
    return letta_client(settings, metrics, told, key_origin=workspace_key(settings))


async def letta_kind_told(
    settings: Settings, lookups: bool = False, within: float | None = None
) -> ServerKind | LettaError:
    """`letta_kind`, or why the server could not be asked (it did not answer). `lookups`: a one-shot command's
    probe, which waits LETTA_CONNECT_TIMEOUT for the connection and LETTA_LOOKUP_TIMEOUT for the answer; else
    LETTA_CONNECT_TIMEOUT in all, or `within` seconds when that is shorter."""
    key = _letta_key(settings)
    if lookups:
        return await told_kind(
            settings.letta_base_url, key, settings.letta_lookup_timeout, connect=settings.letta_connect_timeout
        )
    limit = settings.letta_connect_timeout if within is None else min(within, settings.letta_connect_timeout)
    return await told_kind(settings.letta_base_url, key, within=limit)


class SharedAgentLocks(AgentLocks):
    """The Letta client's in-process locks, then the store's: on Postgres, advisory locks that keep each agent
    to one send in flight across every process sharing the database."""

    def __init__(self, store: Store, earlier: EarlierSends | None = None) -> None:
        super().__init__(earlier)
        self._store = store

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        ids = sorted(set(agent_ids))
        async with super().hold(ids), self._store.agent_lock(ids) as left:
            check_lease()  # a worker frozen past its lease while it waited asks nobody
            for agent_id in left:
                self.unsettle(agent_id)
            if left and self.groups_left is not None:
                await self.groups_left(list(left))
            yield

    def go_on(self) -> None:
        check_lease()


async def look_at_earlier_sends(store: Store, earlier: EarlierSends) -> None:
    """Whether a Letta send an earlier process made may still be running, from the store's journal. If none can
    be, no first send of this process waits on a look at its agent's runs (one request per agent, which a burst of
    new turns after a start would otherwise pay). Called before any turn runs: every step journaled then is an
    earlier process's."""
    since = datetime.now(UTC) - LEFT_GOING_WITHIN - CLOCK_SLACK
    try:
        left = await store.sends_left_going(since)
    except Exception as exc:  # unknown: every agent's runs are looked at, as after a crash
        log.warning("journal not read for sends left going error=%s", type(exc).__name__)
        return
    earlier.ended = not left
    if left:
        log.info("a Letta send an earlier process made may still be running: each agent's runs are looked at "
                 "before this process first sends to it")


async def watch_group_sends_left(
    store: Store, client: LettaClient, patience: float, agents: Collection[str] | None = None
) -> None:
    """The group sends an earlier process left going (killed, or stopped past its grace, mid-send): a 0.11.x group
    send lists no run, so only the journal (its `group` step never seen end) tells. Each member's next send, whichever
    channel's, first waits for the members to have answered it (`group_left`), as the turn's own resume does. Called
    before any turn runs, and on Postgres for the `agents` whose send records a dead process left (the sends
    whose groups hold none of them are left alone: their own members' locks say so); a send older than
    `patience` has ended."""
    since = datetime.now(UTC) - timedelta(seconds=patience)
    try:
        left = await store.steps_left_going(ServerRunner.STEP, since)
        targets = [await store.get_binding(send.team_id, send.channel_id) for send in left]
    except Exception as exc:  # each resumed turn still watches its own send
        log.warning("journal not read for group sends left going error=%s", type(exc).__name__)
        return
    now = asyncio.get_running_loop().time()
    for send, binding in zip(left, targets, strict=True):
        if binding is None or binding.target.kind != "group":
            continue
        if agents is not None and not {a.id for a in binding.target.members} & set(agents):
            continue
        age = (datetime.now(UTC) - send.since).total_seconds()
        going = group_left(client, binding.target, send.otid, now + max(0.0, patience - age))
        for agent in binding.target.members:
            client.locks.unsettle(agent.id, going)
        log.info("a group send an earlier process made may still run: its members are watched before they are "
                 "asked again group=%s", binding.target.group_id)


def watching_group_sends(store: Store, client: LettaClient, patience: float) -> Callable[[list[str]], Awaitable[None]]:
    """The locks' `groups_left` hook for `client`: the group sends a dead process left going among the agents whose
    send records this process takes over, watched (`watch_group_sends_left`)."""
    return lambda agents: watch_group_sends_left(store, client, patience, agents)


def server_id(settings: Settings) -> str:
    """A Letta server as the bridge keys it: its URL and (a digest of) its key."""
    key = settings.letta_api_key.get_secret_value() if settings.letta_api_key else ""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12] if key else "-"
    return f"{settings.letta_base_url}#{digest}"


class ServerAgentLocks(AgentLocks):
    """An agent's send lock, in this process and (Postgres) across processes, keyed by its server too: two
    servers' agents never wait on each other, whatever their ids."""

    def __init__(self, store: Store, server: str, earlier: EarlierSends | None = None) -> None:
        super().__init__(earlier)
        self._store = store
        self._server = server

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        ids = sorted(set(agent_ids))
        async with super().hold(ids), self._store.agent_lock([f"{self._server}|{i}" for i in ids]) as left:
            check_lease()
            agents = [key.removeprefix(f"{self._server}|") for key in left]
            for agent_id in agents:
                self.unsettle(agent_id)
            if agents and self.groups_left is not None:
                await self.groups_left(agents)
            yield

    def go_on(self) -> None:
        check_lease()


@dataclass
class LettaServer:
    client: LettaClient
    chooser: RunnerChooser


ASK_AGAIN_EVERY = 5.0  # seconds between two asks of the kind of a server that did not tell it (its stand-in between)


class LettaServers:
    """One client and runner chooser per Letta server, made on first use and closed on stop. `make_client` finds
    out which kind of server a URL is (a REST server or an App Server, each workspace's own) and builds its client."""

    def __init__(
        self,
        store: Store,
        make_client: Callable[[Settings], Awaitable[LettaClient]],
        earlier: EarlierSends | None = None,
        ask_every: float = ASK_AGAIN_EVERY,
    ) -> None:
        self._store = store
        self._earlier = earlier
        self._make = make_client
        self._ask_every = ask_every
        self._servers: dict[str, LettaServer] = {}
        self._making: dict[str, asyncio.Lock] = {}  # per server: a slow one holds up no other
        self._asked: dict[str, float] = {}  # per server with a stand-in: when its kind was last asked (monotonic)

    def add(self, settings: Settings, client: LettaClient) -> LettaServer:
        """The server of `settings`, with a client made already (the environment's default server, whose group
        sends left going the start watches)."""
        found = self._servers[server_id(settings)] = self._server(settings, client)
        return found

    def _server(self, settings: Settings, client: LettaClient) -> LettaServer:
        locks = client.locks = ServerAgentLocks(self._store, server_id(settings), self._earlier)
        locks.groups_left = watching_group_sends(self._store, client, settings.letta_recovery_wait_seconds)
        return LettaServer(client, runner_chooser(settings, client))

    async def get(self, settings: Settings) -> LettaServer:
        """The server of `settings`, its client made on first use; the group sends an earlier process left going
        there watched before anyone uses it (watch_group_sends_left). A server whose kind could not be told
        (`kind_guessed`: its stand-in client sends nothing) is asked again at a use at most every `ask_every`
        seconds, uses waiting behind that ask taking its answer: a server that drops packets costs a mention one
        LETTA_CONNECT_TIMEOUT at most, not one per use. Its stand-in is kept until it answers, then replaced by its
        real client."""
        key = server_id(settings)
        found = self._servers.get(key)
        if found is not None and not self._ask_now(key, found):
            return found
        asked = self._asked.get(key)
        async with self._making.setdefault(key, asyncio.Lock()):  # one client per server, however many ask at once
            found = self._servers.get(key)
            if found is not None and (self._asked.get(key) != asked or not self._ask_now(key, found)):
                return found  # made, or asked again, while this use waited: its answer is this use's
            client = await self._make(settings)
            if found is not None and client.kind_guessed:  # still no answer: the same stand-in, kits and all
                self._asked[key] = time.monotonic()
                await client.aclose()
                return found
            if isinstance(client, KindUntold):
                log.warning(
                    "the kind of the Letta server at %s could not be told: it did not tell it (%s); its turns fail "
                    "as Letta unreachable, and it is asked again at a use at most every %.0f s",
                    settings.letta_base_url, client.why, self._ask_every,
                )
            if found is not None:
                kind = "an App Server" if client.app_server else "a REST server"
                log.info("the Letta server at %s answers now: %s, its client made", settings.letta_base_url, kind)
                await found.client.aclose()
            found = self._server(settings, client)
            await watch_group_sends_left(self._store, found.client, settings.letta_recovery_wait_seconds)
            # Stamped only once the new client is held: until then a use waits at the lock, never handed the old one.
            self._servers[key], self._asked[key] = found, time.monotonic()
            return found

    def _ask_now(self, key: str, found: LettaServer) -> bool:
        """Whether a use of a server held already asks its kind again: a stand-in's, once `ask_every` has passed."""
        if not found.client.kind_guessed:
            return False
        return time.monotonic() - self._asked.get(key, 0.0) >= self._ask_every

    async def aclose(self, wait: float = 0.0) -> None:
        """Close every client; an App Server's socket once its turns end, waiting up to `wait` seconds."""
        await asyncio.gather(*(s.client.aclose(wait) for s in self._servers.values()), return_exceptions=True)
        self._servers.clear()
