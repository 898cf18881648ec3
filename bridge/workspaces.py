"""OAuth mode: one bridge, many workspaces.

Each installed workspace gets what a single-workspace bridge has once: a Slack client holding its own bot token
(read from the installation store, renewed before it expires when the app has token rotation on), the poster,
directory and drafts over it, and its Letta server: its own (set with /letta setup) or the environment's default.
Letta clients, runner choosers and their caches and locks are kept per server (URL and key), so two workspaces on
two servers never share one, while workspaces on one server share its agents' locks.

The relay stays one (its faces over the workspaces: workspace_relay.py). A workspace that uninstalls the app or
whose tokens are revoked is `removed`: its tokens are deleted, its queued turns end (a log line each, nothing is
posted), its running turns are cancelled, the tool calls they left pending on Letta are denied as a stop's are,
and its bindings are deleted later (UNINSTALLED_BINDINGS_DAYS) or kept (UNINSTALLED_BINDINGS=keep).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.clients import LettaServers, server_id
from bridge.config import LETTA_SCHEMES, Settings
from bridge.config_errors import letta_path_problem, letta_query_problem, two_credentials, url_problem
from bridge.configure import Configurator
from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.locks import EarlierSends
from bridge.logs import MASKED, shown_url
from bridge.metrics import Metrics
from bridge.slack.directory import Directory
from bridge.slack.failures import slack_error
from bridge.slack.live import LiveMessages
from bridge.slack.metered import CountedRateLimits, MeteredSlackClient
from bridge.slack.post import Look, SlackPoster
from bridge.stop_end import withdraw_ended
from bridge.stopping import TurnAbandoned
from bridge.store.approvals import ApprovalStore
from bridge.store.attachments import AttachmentStore
from bridge.store.base import Store
from bridge.store.installations import BridgeInstallationStore
from bridge.turns import Job, TurnWorker

log = logging.getLogger(__name__)

TOKEN_CACHE_SECONDS = 10.0  # another process's rotation or removal is seen within this
SETUP_CHECK_SECONDS = 2.5  # a view_submission is answered within Slack's 3 seconds
REMOVED = "the app was removed from the workspace"  # the reason the agent is given


class WorkspaceGone(TurnAbandoned):
    """The workspace has no installation (never installed, uninstalled, or its tokens were revoked); a turn that
    finds it so at a Slack call ends without a word (`Workspaces.run`)."""


class WorkspaceSlackClient(MeteredSlackClient):
    """A Slack client for one workspace: each call carries the workspace's current bot token."""

    def __init__(self, workspaces: Workspaces, team_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._workspaces = workspaces
        self.team_id = team_id

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        installation = await self._workspaces.installation(self.team_id)
        self.token = installation.bot_token
        return await super().api_call(api_method, **kwargs)


@dataclass
class Kit:
    """What one workspace's turns and commands run with."""

    team_id: str
    server: str
    settings: Settings
    slack: WorkspaceSlackClient
    poster: SlackPoster
    chooser: RunnerChooser
    configurator: Configurator
    worker: TurnWorker


class Workspaces:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        installs: BridgeInstallationStore,
        metrics: Metrics,
        make_letta: Callable[[Settings], Awaitable[LettaClient]],
        earlier: EarlierSends | None = None,
    ) -> None:
        assert settings.slack_client_id is not None and settings.slack_client_secret is not None
        self.settings = settings
        self.store = store
        self.installs = installs
        self.metrics = metrics
        self.letta = LettaServers(store, make_letta, earlier)
        self._make_letta = make_letta
        self.session: aiohttp.ClientSession | None = None
        renewals = MeteredSlackClient(base_url=settings.slack_api_url)
        renewals.metrics = metrics  # oauth.v2.access, timed and its failures counted with every other Slack call
        self._rotator = AsyncTokenRotator(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            client=renewals,
        )
        self._cache: dict[str, tuple[float, Installation]] = {}
        self._kits: dict[str, Kit] = {}
        self._rotating: dict[str, asyncio.Lock] = {}
        self._seen: set[tuple[str, str]] = set()
        self._running: dict[str, set[asyncio.Task[str]]] = {}
        self._removed: set[str] = set()

    # ------------------------------------------------------------------ tokens

    async def installation(self, team_id: str) -> Installation:
        """The installation serving the workspace, its bot token renewed first when it is about to expire."""
        cached = self._cache.get(team_id)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS and not self._expiring(cached[1]):
            return cached[1]
        found = await self.installs.installation_for(team_id)
        if found is None or not found.bot_token:
            self._cache.pop(team_id, None)
            raise WorkspaceGone(team_id)
        rotated = await self.rotated(found)
        found = rotated or found
        self._cache[team_id] = (time.monotonic(), found)
        return found

    def _expiring(self, installation: Installation) -> bool:
        expires = installation.bot_token_expires_at
        margin = self.settings.slack_token_rotation_minutes * 60
        return expires is not None and float(expires) <= time.time() + margin

    async def rotated(self, installation: Installation) -> Installation | None:
        """The installation with fresh tokens if its bot token expires within SLACK_TOKEN_ROTATION_MINUTES, saved
        before use; None when it needs none. One process at a time (the store's lock on Postgres), and the one
        that waited reads the tokens the first one saved instead of spending the used refresh token again."""
        if installation.bot_refresh_token is None or not self._expiring(installation):
            return None
        key = f"{installation.enterprise_id or ''}/{installation.team_id or ''}"
        lock = self._rotating.setdefault(key, asyncio.Lock())
        async with lock, self.store.token_lock(f"slack-token-rotation:{key}"):
            current = await self.installs.async_find_installation(
                enterprise_id=installation.enterprise_id,
                team_id=installation.team_id,
                is_enterprise_install=installation.is_enterprise_install,
            )
            if current is None:
                raise WorkspaceGone(installation.team_id or installation.enterprise_id or "")
            if not self._expiring(current):
                return current
            try:
                fresh = await self._rotator.perform_token_rotation(
                    installation=current, minutes_before_expiration=self.settings.slack_token_rotation_minutes
                )
            except (SlackTokenRotationError, SlackApiError) as exc:
                refused = exc.api_error if isinstance(exc, SlackTokenRotationError) else exc
                log.warning("slack token rotation failed workspace=%s error=%s", key, slack_error(refused))
                raise
            if fresh is None:
                return current
            await self.installs.async_save(fresh)
            log.info("slack bot token renewed workspace=%s", key)
            return fresh

    async def seen(self, team_id: str | None, enterprise_id: str | None) -> None:
        """Record the workspace (and its org) the first time this process serves it."""
        if team_id and (team_id, enterprise_id or "") not in self._seen:
            await self.installs.seen(team_id, enterprise_id or "")
            self._seen.add((team_id, enterprise_id or ""))

    # ------------------------------------------------------------------ per-workspace settings and kits

    async def server_of(self, team_id: str) -> str:
        """The Letta server (URL and key: on Letta Cloud the key is the account) the workspace's turns go to."""
        return server_id(await self.settings_for(team_id))

    async def settings_for(self, team_id: str) -> Settings:
        """The environment's settings with the workspace's own Letta server, if it set one."""
        own = await self.installs.letta(team_id)
        return self.settings if own is None else own.applied_to(self.settings)

    def kits(self) -> list[Kit]:
        """The workspaces this process has served so far (each with its own worker)."""
        return list(self._kits.values())

    def served(self, team_id: str) -> Kit | None:
        """The workspace's kit if this process has served it already (never built here: that awaits)."""
        return self._kits.get(team_id)

    async def kit(self, team_id: str) -> Kit:
        """The workspace's kit, made again when its server or that server's client changed (a client made while
        the server did not answer is made again once it answers as an App Server: LettaServers.get)."""
        settings = await self.settings_for(team_id)
        server = server_id(settings)
        kit = self._kits.get(team_id)
        letta = await self.letta.get(settings)
        if kit is not None and kit.server == server and kit.chooser is letta.chooser:
            return kit
        slack = self._slack(team_id, retry=True)
        drafts = self._slack(team_id, retry=False)
        looks = {name: Look(**look.model_dump()) for name, look in settings.slack_agents.items()}
        poster = SlackPoster(slack, settings.slack_agent_usernames, looks)
        configurator = Configurator(settings, self.store, letta.client, letta.chooser)
        live = LiveMessages(slack, drafts, settings.slack_live_replies, settings.slack_task_display)
        worker = TurnWorker(
            settings, self.store, letta.chooser, poster, Directory(slack, drafts), configurator.default_binding, live
        )
        worker.metrics = self.metrics
        kit = self._kits[team_id] = Kit(team_id, server, settings, slack, poster, letta.chooser, configurator, worker)
        return kit

    def reinstalled(self, team_id: str) -> None:
        """The workspace installed the app again (an Enterprise Grid org, `E…`: each of its workspaces): what
        their kits learnt of the old token is asked again (in this process: another sharing the database learns
        it at its next start)."""
        kits = [self._kits[team_id]] if team_id in self._kits else list(self._kits.values())
        for kit in kits:
            kit.poster.relearn()

    def _slack(self, team_id: str, retry: bool) -> WorkspaceSlackClient:
        client = WorkspaceSlackClient(self, team_id, base_url=self.settings.slack_api_url, session=self.session)
        client.metrics = self.metrics
        if retry:
            client.retry_handlers.append(CountedRateLimits(client, max_retry_count=3))
        return client

    @property
    def stops(self) -> WorkspaceStops:
        return WorkspaceStops(self)

    async def configurator(self, team_id: str) -> Configurator:
        return (await self.kit(team_id)).configurator

    async def letta_of(self, team_id: str) -> tuple[str, bool]:
        """The workspace's Letta URL, and whether it is its own (else the environment's default)."""
        own = await self.installs.letta(team_id)
        return (own.base_url, True) if own is not None else (self.settings.letta_base_url, False)

    async def save_letta(self, team_id: str, base_url: str, api_key: str, actor: str, spent: float = 0.0) -> str | None:
        """Check the server and the key, then save them (the key encrypted); the problem in words, or None.
        An empty URL puts the workspace back on the environment's default server; an empty key for the server
        already saved keeps its saved key (the form cannot show it). `spent`: seconds of Slack's 3
        used already (checking the caller's rights), which the check has less of."""
        within = max(0.5, SETUP_CHECK_SECONDS - spent)
        base_url = base_url.strip().rstrip("/")
        if not base_url:
            await self.installs.set_letta(team_id, None, None, actor)
            log.info("workspace letta reset to the default team=%s by=%s", team_id, actor)
            return None
        if MASKED in base_url:  # the form shows a saved URL's user and password masked: kept as saved, unchanged
            saved = await self.installs.letta(team_id)
            if saved is None or shown_url(saved.base_url).rstrip("/") != base_url:
                return "Type the server URL's user and password again: the form shows them masked. Nothing was saved."
            base_url = saved.base_url.rstrip("/")
        if url_problem("LETTA_BASE_URL", base_url, LETTA_SCHEMES) is not None:  # the settings' own rule
            return (
                "The server URL is a full address such as https://letta.example.com (http:// on a private network); "
                "a Letta App Server's may start with wss:// or ws://."
            )
        if letta_path_problem("LETTA_BASE_URL", base_url) is not None:  # the settings' own rule
            return "The server URL ends in /v1, which the bridge adds itself: give the server's address without it."
        if letta_query_problem("LETTA_BASE_URL", base_url) is not None:  # the settings' own rule
            # Every call appends its path: after a `?` or `#` it would no longer be a path, and the check would read
            # whatever page the URL names (on the bridge's own network too) and say its first words back.
            return "The server URL cannot have a query (?…) or a fragment (#…): give the server's address only."
        if not api_key:  # the form never shows the saved key: left empty for the same server, it is kept
            own = await self.installs.letta(team_id)
            if own is not None and own.base_url.rstrip("/") == base_url and own.api_key:
                api_key = own.api_key
        both = two_credentials(base_url, api_key, ("The server URL", "the API key"))
        if both:
            return both + " Nothing was saved."
        candidate = self.settings.model_copy(
            update={"letta_base_url": base_url, "letta_api_key": SecretStr(api_key) if api_key else None}
        )
        # Slack waits 3 s for this answer: finding out the server's kind counts too. The client is the check's
        # own: nothing is kept of a server that is not saved.
        client: LettaClient | None = None
        try:
            async with asyncio.timeout(within):
                client = await self._make_letta(candidate)
                await client.health()
                await client.list_agents(limit=1)
        except TimeoutError:
            return f"{shown_url(base_url)} did not answer within {within:.1f} seconds; nothing was saved."
        except LettaError as exc:
            return exc.explain("its agent list", looking_up=True) + " Nothing was saved."
        finally:
            if client is not None:
                await client.aclose()
        await self.installs.set_letta(team_id, base_url, api_key or None, actor)
        log.info("workspace letta set team=%s url=%s by=%s", team_id, base_url, actor)
        return None

    # ------------------------------------------------------------------ turns

    async def run(self, job: Job) -> str:
        """Run a turn with its workspace's worker; a workspace that is gone ends it without a word to Slack."""
        team = job.turn.team_id
        try:
            kit = await self.kit(team)
            await self.installation(team)
        except WorkspaceGone:
            return await self._ended(job)
        task: asyncio.Task[str] = asyncio.ensure_future(kit.worker.run(job))
        self._running.setdefault(team, set()).add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if team in self._removed and current is not None and not current.cancelling():
                return await self._ended(job)
            raise
        except TurnAbandoned:  # the workspace is gone, seen at a Slack call or in its card's requests
            return await self._ended(job)
        finally:
            self._running.get(team, set()).discard(task)

    async def _ended(self, job: Job) -> str:
        await AttachmentStore(self.store).drop(job.turn_id)  # its files' bytes go with it
        await self.store.finish_turn(job.turn_id, "uninstalled", REMOVED)
        log.info("turn ended: the workspace removed the app turn_id=%s team=%s", job.turn_id, job.turn.team_id)
        return "uninstalled"

    async def removed(self, team_ids: list[str], why: str) -> None:
        """The app was uninstalled, or its tokens revoked: stop the workspaces' work and forget their tokens."""
        ended: dict[str, list[int]] = {}
        for team in team_ids:
            self._removed.add(team)
            self._cache.pop(team, None)
            self._kits.pop(team, None)
            for turn_id in ended.setdefault(team, await self.installs.end_unfinished_turns(team)):
                log.info("turn ended: %s turn_id=%s team=%s", why, turn_id, team)
            for task in list(self._running.get(team, ())):
                task.cancel()
        await self.installs.mark_removed(team_ids)
        log.info("workspace removed: %s teams=%s", why, ",".join(team_ids))
        for team, turn_ids in ended.items():  # else their agents refuse every message until a decision nobody can make
            await withdraw_ended(partial(self._letta_client, team), ApprovalStore(self.store), turn_ids, REMOVED)

    async def _letta_client(self, team_id: str) -> LettaClient:
        """The workspace's Letta client: its own server and key stay stored until the purge."""
        return (await self.letta.get(await self.settings_for(team_id))).client

    async def purge(self) -> int:
        """Delete the bindings of workspaces removed more than UNINSTALLED_BINDINGS_DAYS ago."""
        count = 0
        for team in await self.installs.due_for_purge():
            for binding in await self.store.list_bindings(team):
                await self.store.delete_binding(team, binding.channel_id, actor="uninstalled")
                count += 1
            await self.installs.purged(team)
            log.info("bindings of a removed workspace deleted team=%s", team)
        return count

    async def aclose(self, wait: float = 0.0) -> None:
        await self.letta.aclose(wait)


class WorkspaceStops:
    """Stopping a turn in OAuth mode: it runs on its workspace's worker, so every worker of this process is asked."""

    def __init__(self, workspaces: Workspaces) -> None:
        self._workspaces = workspaces

    async def stop(self, turn_id: int, by: str) -> bool:
        for kit in list(self._workspaces.kits()):
            if await kit.worker.stops.stop(turn_id, by):
                return True
        return False
