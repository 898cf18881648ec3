"""Where a channel's binding is changed and inspected: ids -> a checked Target -> the store, plus what the
Letta server offers, how things stand now, and the default target for DMs and unbound channels.

Used by the /letta command and `channels connect`; speaks `bridge.domain` types so that the Slack side never
sees Letta's wire format. Every failure is a `ConfigError` in plain words, raised before anything is saved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.config import Settings
from bridge.domain import (
    BROADCAST,
    AgentInfo,
    AgentRef,
    Binding,
    Catalog,
    HistoryEntry,
    Pattern,
    RunnerChoice,
    Target,
)
from bridge.letta.chooser import RunnerChooser, RunnerUse
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.letta.groups import as_recorded
from bridge.letta.paging import LIST_CAP
from bridge.letta.patterns import MANAGED
from bridge.logs import shown_url
from bridge.store.base import Store
from bridge.store.feedback import AgentFeedback, FeedbackStore
from bridge.store.rows import same_binding
from bridge.targets import TargetError, check_ids, check_pattern, resolve_target, with_pattern

log = logging.getLogger(__name__)

# How long a resolved default target is trusted before its names are looked up again.
DEFAULT_TARGET_TTL = 300.0
HISTORY_SHOWN = 5
# Group members missing from the (capped) agent list, looked up by id for the catalogue: at most this many.
MEMBER_LOOKUPS = 100
MEMBER_LOOKUPS_AT_ONCE = 8


class ConfigError(Exception):
    """Nothing was changed; the message says why in plain words to a person in Slack, `for_operator` to the person
    at the terminal (`channels connect`) where the two differ."""

    def __init__(self, message: str, for_operator: str | None = None, usage: bool = False) -> None:
        super().__init__(message)
        self.for_operator = for_operator or message
        self.usage = usage  # what was asked cannot work as given (the command line's exit 2)

    @classmethod
    def letta(cls, error: LettaError, what: str) -> ConfigError:
        return cls(error.explain(what, looking_up=True), error.for_operator(what))


class RunnerRefused(ConfigError):
    """The binding's explicit runner cannot be used for its target on this server."""


@dataclass(frozen=True)
class Connected:
    binding: Binding
    use: RunnerUse  # the binding's runner setting and what it resolves to
    replaced: Binding | None
    unchanged: bool = False  # the channel was connected to just this already (a second press): nothing was saved

    @property
    def runner(self) -> RunnerChoice:
        assert self.use.used is not None
        return self.use.used


@dataclass(frozen=True)
class Probe:
    """Whether something answered just now, and what it said."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Status:
    binding: Binding | None
    history: list[HistoryEntry]
    server: Probe
    target: Probe | None
    runner: RunnerChoice | None
    default: str | None  # the default target's ids, when unbound mentions in this channel go there
    feedback: tuple[AgentFeedback, ...] = ()  # each agent's 👍/👎 on its replies in this channel
    ignored_dm: bool = False  # a direct message, and direct messages are ignored (no DEFAULT_TARGET)
    shown: Target | None = None  # a Letta group's target as its record has it now: its manager named


def is_direct(channel_id: str) -> bool:
    return channel_id.startswith("D")


class Configurator:
    def __init__(self, settings: Settings, store: Store, letta: LettaClient, chooser: RunnerChooser) -> None:
        self.settings = settings
        self._store = store
        self._letta = letta
        self._chooser = chooser
        # The default target as last looked up: when (loop time, for its TTL; wall clock, as its binding's bound_at).
        self._default: tuple[float, datetime, Target] | None = None
        self._default_lock = asyncio.Lock()

    async def connect(
        self,
        team: str,
        channel: str,
        ids: Sequence[str],
        actor: str,
        runner: RunnerChoice | None = "auto",
        broadcast: bool = False,
        pattern: Pattern | None = None,
    ) -> Connected:
        """Look every id up, pick the runner, and only then save; returns what it replaced. `pattern` makes a
        list of agents a bridge-defined group (`broadcast`, the CLI's flag, is `--pattern broadcast`). `runner`
        None (Slack, which has no runner option) keeps the channel's own, an operator's `--runner bridge` that Stop
        relies on on 0.11.x, where the new target allows it; else `auto`, which the answer shows."""
        kept: RunnerChoice | None = None
        if runner is None:
            current = await self._store.get_binding(team, channel)
            kept = current.runner if current is not None and current.runner != "auto" else None
        try:
            prepared = await self.prepare(team, channel, ids, actor, kept or runner or "auto", broadcast, pattern)
        except RunnerRefused:
            if kept is None:
                raise
            prepared = await self.prepare(team, channel, ids, actor, "auto", broadcast, pattern)
        return await self.save(prepared)

    async def save(self, prepared: Connected) -> Connected:
        """Save what `prepare` accepted; returns it with the binding it replaced. The same target and runner again
        by the same person (a button pressed twice, a command sent twice) is no change: nothing is saved, and no
        history entry made. Someone else's is theirs: the channel is told who set it now."""
        binding = prepared.binding
        current = await self._store.get_binding(binding.team_id, binding.channel_id)
        # Saved again all the same: the group's members the answer shows are the ones its turns are played with,
        # and a Letta group's manager (looked up on its record, not kept) is still named. Changed or removed
        # meanwhile by another process, it is saved as asked.
        if same_binding(current, binding) and current is not None and await self._store.touch_binding(binding):
            shown = dataclasses.replace(current, target=binding.target, bound_at=binding.bound_at)
            return dataclasses.replace(prepared, binding=shown, replaced=current, unchanged=True)
        replaced = await self._store.put_binding(binding)
        log.info(
            "channel bound team=%s channel=%s target=%s by=%s",
            binding.team_id, binding.channel_id, binding.target.ref, binding.bound_by,
        )
        return dataclasses.replace(prepared, replaced=replaced)

    def bindable(self, channel: str) -> None:
        """ConfigError when the channel can never be connected (a direct message the bridge ignores), said before a
        menu is offered as well as when ids are given."""
        if is_direct(channel) and not self.settings.default_target:
            raise ConfigError(
                "a direct message cannot be connected: I answer direct messages only when the operator sets "
                "DEFAULT_TARGET, which is not set. Connect a channel instead, and mention me there.",
                f"{channel} is a direct message, and without DEFAULT_TARGET the bridge ignores direct messages, so "
                "its binding would never be used: connect a channel (C…), or set DEFAULT_TARGET.",
            )

    async def prepare(
        self,
        team: str,
        channel: str,
        ids: Sequence[str],
        actor: str,
        runner: RunnerChoice = "auto",
        broadcast: bool = False,
        pattern: Pattern | None = None,
    ) -> Connected:
        """`connect` without the saving, which touches no store: the command line opens its database only for a
        binding that will be saved, so that a refusal creates nothing."""
        self.bindable(channel)
        if broadcast:
            asked = pattern or Pattern()
            if asked.name not in (None, BROADCAST):
                raise ConfigError(
                    f"--broadcast and --pattern {asked.name} ask for two patterns: give one of them.", usage=True
                )
            pattern = dataclasses.replace(asked, name=BROADCAST)  # its other options are refused as broadcast's
        try:
            check_ids(ids, self._letta.app_server, self._letta.base_url)
            check_pattern(ids, pattern or Pattern(), self._letta.app_server)
            # The command's words go to Slack even from `channels connect`: its CLI says `for_operator`.
            target = await resolve_target(self._letta, ids, self.settings.slack_command)
            target = await with_pattern(self._letta, target, pattern or Pattern(), self.settings.slack_command)
        except TargetError as exc:
            raise ConfigError(str(exc), exc.for_operator, exc.usage) from None
        binding = Binding(team_id=team, channel_id=channel, target=target, runner=runner, bound_by=actor)
        try:
            refused = await self._chooser.refusal(binding)
            use = await self._chooser.use(binding)
        except LettaError as exc:
            raise ConfigError.letta(exc, "the health check") from None
        if refused is not None:
            raise RunnerRefused(refused)
        return Connected(binding, use, None)

    async def disconnect(self, team: str, channel: str, actor: str) -> Binding | None:
        """Remove the binding (the history keeps it); None when there was none."""
        previous = await self._store.delete_binding(team, channel, actor=actor)
        if previous is not None:
            log.info("channel unbound team=%s channel=%s by=%s", team, channel, actor)
        return previous

    async def catalog(self) -> Catalog:
        """The server's agents and groups (None when it has no group routes), each group's members and manager
        named: a sleeptime group's one member never posts, its manager (main agent) answers."""
        try:
            agents = await self._letta.all_agents()
        except LettaError as exc:
            raise ConfigError.letta(exc, "the agent list") from None
        names = {a.id: a.name for a in agents}
        try:
            groups = await self._letta.all_groups()
        except LettaError as exc:
            if exc.kind != Kind.ROUTE_MISSING:
                raise ConfigError.letta(exc, "the group list") from None
            groups = None
        targets = None
        if groups is not None:
            members = {i for g in groups for i in (*g.agent_ids, *filter(None, [g.manager_agent_id]))}
            names.update(await self._member_names(members - names.keys()))
            targets = tuple(
                Target(
                    kind="group",
                    agents=tuple(AgentRef(i, names.get(i, i)) for i in g.agent_ids),
                    group_id=g.id,
                    manager_type=g.manager_type,
                    description=g.description or "",
                    manager=AgentRef(m, names.get(m, m)) if (m := g.manager_agent_id) else None,
                )
                for g in groups
            )
        infos = tuple(AgentInfo(a.id, a.name, a.description or "") for a in agents)
        return Catalog(targets, infos, len(agents) < LIST_CAP, groups is None or len(groups) < LIST_CAP)

    async def _member_names(self, ids: set[str]) -> dict[str, str]:
        """Names of group members the agent list left out (a server with more agents than LIST_CAP), looked up
        one by one, a few at once and MEMBER_LOOKUPS at most; a member not found is shown by its id."""
        gate = asyncio.Semaphore(MEMBER_LOOKUPS_AT_ONCE)

        async def name(agent_id: str) -> tuple[str, str]:
            async with gate:
                try:
                    return agent_id, (await self._letta.get_agent(agent_id)).name
                except LettaError:
                    return agent_id, agent_id

        return dict(await asyncio.gather(*(name(i) for i in sorted(ids)[:MEMBER_LOOKUPS])))

    async def status(self, team: str, channel: str) -> Status:
        binding = await self._store.get_binding(team, channel)
        history = await self._store.history(team, channel, limit=HISTORY_SHOWN)
        target = runner = shown = None
        if binding is None:
            server = await self._bounded(self._probe_server())
        else:
            # At once, each within LETTA_LOOKUP_TIMEOUT: one after another, a slow Letta ran past the command's
            # deadline, and status said nothing of the channel's binding the store holds.
            server, target, shown, runner = await asyncio.gather(
                self._bounded(self._probe_server()),
                self._bounded(self._probe_target(binding.target)),
                self._as_letta_has_it(binding.target),
                self._runner_now(binding),
            )
            if not server.ok:
                target = runner = shown = None
        default = " ".join(self.settings.default_target) if self.default_applies(channel) else None
        feedback = tuple(await FeedbackStore(self._store).counts(team, channel))
        ignored_dm = is_direct(channel) and not self.settings.default_target
        return Status(binding, history, server, target, runner, default, feedback, ignored_dm, shown)

    async def _runner_now(self, binding: Binding) -> RunnerChoice | None:
        """The runner the channel's turns take now; None where Letta fails or is slower than LETTA_LOOKUP_TIMEOUT."""
        try:
            async with asyncio.timeout(self.settings.letta_lookup_timeout):
                return await self._chooser.choice(binding)
        except (LettaError, TimeoutError):
            return None

    async def _as_letta_has_it(self, target: Target) -> Target | None:
        """A Letta group with the manager its record names (a sleeptime group's main agent, the one that answers):
        the store keeps a group's members only. None where the lookup fails or is slow: the saved target is said."""
        if target.group_id is None or target.manager_type not in MANAGED or target.manager is not None:
            return None
        try:
            async with asyncio.timeout(self.settings.letta_lookup_timeout):
                return await as_recorded(self._letta, target)
        except (LettaError, TimeoutError):
            return None

    async def _bounded(self, probe: Awaitable[Probe]) -> Probe:
        """A probe that waits LETTA_LOOKUP_TIMEOUT at most: status is asked when the agents are silent, and must
        say what it knows (the binding, from the store) though Letta never answers."""
        within = self.settings.letta_lookup_timeout
        try:
            async with asyncio.timeout(within):
                return await probe
        except TimeoutError:
            unit = "second" if within == 1 else "seconds"
            url = shown_url(self._letta.base_url)
            return Probe(False, f"The Letta server at {url} did not answer within {within:g} {unit}.")

    async def _probe_server(self) -> Probe:
        try:
            version = (await self._letta.health()).version
        except LettaError as exc:
            return Probe(False, exc.explain("the health check", looking_up=True))
        return Probe(True, f"Letta {version} at {shown_url(self._letta.base_url)} answers")

    async def _probe_target(self, target: Target) -> Probe:
        what = f"group {target.group_id}"
        try:
            if target.group_id is not None:
                group = await self._letta.get_group(target.group_id)
                # Letta found the record: that says nothing of whether its agents' models can answer.
                return Probe(True, f"Letta has the group, with {len(group.agent_ids)} agents")
            # A bridge-defined group's manager is asked first at every turn: without it no agent answers.
            asking = (*target.agents, *([target.manager] if target.manager is not None else []))
            found = await asyncio.gather(*(self._letta.get_agent(a.id) for a in asking), return_exceptions=True)
            failed = [(a, f) for a, f in zip(asking, found, strict=True) if isinstance(f, BaseException)]
            if failed:
                agent, first = failed[0]
                what = agent.name if agent.name != agent.id else f"agent {agent.id}"
                raise first
        except LettaError as exc:
            if exc.kind == Kind.NOT_FOUND:
                command = self.settings.slack_command  # said in Slack, by /letta status
                return Probe(
                    False,
                    f"Letta no longer knows {what}: someone who may configure this channel can connect it again "
                    f"with `{command} connect`",
                )
            return Probe(False, exc.explain(what, looking_up=True))
        return Probe(True, "Letta has every agent")

    def default_applies(self, channel: str) -> bool:
        """Unbound DMs go to the default target when one is set; unbound channels only if the operator says so."""
        s = self.settings
        return bool(s.default_target) and (is_direct(channel) or s.default_target_in_channels)

    async def default_binding(self, team_id: str, channel_id: str) -> Binding | None:
        """For the relay: the binding an unbound channel or DM uses, or None (the turn is answered as unbound).
        TargetError, in words, where the default applies but cannot be looked up (never could, or Letta no longer
        has it)."""
        if not self.default_applies(channel_id):
            return None
        looked_up, target = await self._default_target()
        # Saved when it was looked up, not now: a binding newer than the group's record has it read again at once
        # (letta/groups.py), which would be at every turn.
        return Binding(
            team_id=team_id, channel_id=channel_id, target=target, bound_by="default", bound_at=looked_up
        )

    async def _default_target(self) -> tuple[datetime, Target]:
        async with self._default_lock:
            now = asyncio.get_running_loop().time()
            if self._default is not None and now - self._default[0] < DEFAULT_TARGET_TTL:
                return self._default[1], self._default[2]
            sent = datetime.now(UTC)
            try:
                target = await resolve_target(self._letta, self.settings.default_target, self.settings.slack_command)
            except TargetError as exc:
                if self._default is None or not exc.may_pass:
                    # Never looked up, or Letta says it has no such agent or group (deleted since): kept, it would
                    # be asked and fail at every DM until a restart, each time told to connect the DM.
                    self._default = None
                    log.warning("default target unusable: %s", exc)
                    raise
                # Looked up before: Letta's trouble of the moment does not turn DMs away (the send says what is
                # wrong, if anything is); the next turn looks it up again.
                log.warning("default target not looked up again, the last lookup used: %s", exc)
                return self._default[1], self._default[2]
            self._default = (now, sent, target)
            return sent, target
