"""Stopping a thread's work: the running turn, its queued turns, and the Letta runs behind them.

A stop comes from Slack's own Stop button (`agent_session_stopped`), the bridge's fallback Stop button, a
`stop` mention in the thread, or `/letta stop` (slash commands cannot be run inside threads, so it stops the
channel's turns). The order matters:

1. the turns are marked `stopped` in the store first: a stopped turn is never run, resumed or finished as
   anything else, in this process or another one sharing the database;
2. the Letta runs in flight are cancelled (conversation or agent cancel route; on an App Server, this process's
   own message to the thread's conversation is taken back: out of the queue, or aborted by its run, never the
   turn ahead of it, letta/appserver/withdraw.py): Letta does not interrupt a model call already running, so the
   run ends after it, its stream with `stop_reason: cancelled`;
3. the turn's task is cancelled here: nothing more is posted for it, and the next agents of a group turn are
   never asked. A process running a turn another process stopped sees the mark within `poll` seconds.

Who may stop, and what a request stopped, is stop_request.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bridge.domain import Target
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.locks import TURN_HOLDS
from bridge.letta.own_runs import TURN_RUNS, OwnRuns, OwnSend
from bridge.letta.patterns import step_otid
from bridge.store.base import Store
from bridge.tracked_journal import TrackedJournal as TrackedJournal  # the runners' journal, imported from here

log = logging.getLogger(__name__)

# A step key names its agent (`agent-<uuid>`, or an App Server's `agent-local-<uuid>`), letta/patterns.py.
_AGENT_ID = re.compile(r"agent-(?:local-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CANCEL_DEADLINE = 10.0  # seconds for the cancel calls of one stop
REPORT_WAIT = 3.0  # seconds a stop waits, before closing the turn's streams, for a send to name the run to cancel
LOCK_WAIT = 2.0  # seconds a cancel of an earlier run's send waits for its agent's send lock


class TurnAbandoned(Exception):
    """Raised inside a turn whose Slack side is gone (OAuth mode: its workspace removed the app, seen by another
    process): the turn ends at once, its Letta runs cancelled, nothing posted, and whoever runs it says why."""


class ApprovalWithdrawn(TurnAbandoned):
    """A card's requests were settled by another process while this one waited on them (their workspace removed
    the app there, and that process denied them on Letta): no decision of this turn may reach Letta now."""


class TurnStopped(Exception):
    """Raised inside a turn that was stopped (seen before a post): the turn ends as `stopped`."""

    def __init__(self, by: str) -> None:
        super().__init__(f"stopped by {by}")
        self.by = by


@dataclass
class RunningTurn:
    """A turn running in this process: what a stop must cancel."""

    turn_id: int
    team_id: str
    channel_id: str
    thread_ts: str
    task: asyncio.Task[int] | None = None
    target: Target | None = None
    threaded: bool = False  # the thread's agents run in Letta conversations
    sending: set[str] = field(default_factory=set)  # journal steps sent and not answered yet
    holding: set[str] = field(default_factory=set)  # send-lock keys its sends hold (locks.TURN_HOLDS)
    stopped_by: str | None = None
    cancelling: bool = False  # a stop delivered here (TurnStops.stop) cancels its Letta runs itself, then its task
    session: bool = False  # the thread's Slack agent session shows the turn (else the fallbacks do)
    looking: asyncio.Future[str | None] | None = None  # the store's answer to a check under way
    otid: str = ""  # the turn's: its sends' otids derive from it (patterns.step_otid)
    runs: OwnRuns = field(default_factory=OwnRuns)  # the runs its sends reported: all a Stop cancels by agent

    def check(self) -> None:
        """Raise TurnStopped once the turn was stopped: called before anything is posted."""
        if self.stopped_by is not None:
            raise TurnStopped(self.stopped_by)


class TurnStops:
    """The turns running in this process, and stopping one of them (Letta first, then the task)."""

    def __init__(self, store: Store, client: LettaClient, poll: float = 2.0) -> None:
        self._store = store
        self._client = client
        self._poll = poll
        self.running: dict[int, RunningTurn] = {}

    @property
    def client(self) -> LettaClient:
        return self._client

    @contextlib.asynccontextmanager
    async def track(self, turn_id: int, team_id: str, channel_id: str, thread_ts: str) -> AsyncIterator[RunningTurn]:
        """Register the turn while it runs; a watcher notices a stop recorded by another process."""
        running = self.running[turn_id] = RunningTurn(turn_id, team_id, channel_id, thread_ts)
        watcher = asyncio.create_task(self._watch(running)) if self._poll > 0 else None
        holds = TURN_HOLDS.set(running.holding)  # the turn's sends, in this task and the ones it starts
        runs = TURN_RUNS.set(running.runs)
        try:
            yield running
        finally:
            TURN_RUNS.reset(runs)
            TURN_HOLDS.reset(holds)
            self.running.pop(turn_id, None)
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, running: RunningTurn) -> None:
        while running.stopped_by is None:
            await asyncio.sleep(self._poll)
            try:
                by = await self._store.turn_stopped_by(running.turn_id)
            except Exception as exc:  # the database hiccuped: look again next time
                log.debug("could not read the turn's status error=%s", type(exc).__name__)
                continue
            if by is not None:
                await self.stop(running.turn_id, by)

    async def stop(self, turn_id: int, by: str) -> bool:
        """Stop the turn if it runs here: cancel its Letta runs, then its task. False when it does not run here."""
        running = self.running.get(turn_id)
        if running is None or running.stopped_by is not None:
            return False
        running.stopped_by, running.cancelling = by, True
        log.info("turn stopped turn_id=%s channel=%s by=%s", turn_id, running.channel_id, by)
        try:
            async with asyncio.timeout(CANCEL_DEADLINE):
                await self.cancel_letta(running)
        except TimeoutError:
            log.warning("letta cancel took too long turn_id=%s", turn_id)
        try:
            async with asyncio.timeout(REPORT_WAIT):  # a send whose run is cancelled once its first event names it
                await running.runs.stopped_reported()
        except TimeoutError:
            log.info("letta cancel left out: a stopped send reported no run in time turn_id=%s", turn_id)
        if running.task is not None:
            running.task.cancel()
        return True

    async def check(self, running: RunningTurn) -> None:
        """Raise TurnStopped if the turn was stopped: delivered here, or only recorded (another process's stop, a
        workspace kit replaced since the turn began in OAuth mode, a channel-wide stop still cancelling earlier
        turns' Letta runs). Called before each post, and before each next agent."""
        running.check()
        by = await self._stopped_by(running)
        if by is not None:
            running.stopped_by = by  # known here from now on: what the runner is cancelled in sees a stop
            raise TurnStopped(by)

    async def _stopped_by(self, running: RunningTurn) -> str | None:
        """The store's word on the turn, read once for the checks made at the same moment (a reply's post and
        the next agent's ask both look as the reply comes): a check shares a read not begun yet, never one
        already under way, which may have been made before a stop this check must see."""
        if running.looking is None:

            async def read() -> str | None:
                if running.looking is looking:
                    running.looking = None  # under way from here: a check begun now reads again
                return await self._store.turn_stopped_by(running.turn_id)

            def retrieved(_: object) -> None:
                if not looking.cancelled():
                    looking.exception()  # each checker that waited raised it; none may be left to

            looking = running.looking = asyncio.ensure_future(read())
            looking.add_done_callback(retrieved)
        return await asyncio.shield(running.looking)

    async def cancel_letta(self, running: RunningTurn) -> list[str]:
        """Cancel the runs of the turn's sends in flight; returns the routes' targets (agent or conversation ids).

        This run's sends that hold their agents' locks own those agents' runs; one journaled and still waiting for
        its lock made none (another turn's send holds it, and the agent cancel route would end that one's run; an
        App Server's cancel takes back this process's own message only). A send an earlier run of the
        turn journaled and never saw answered (its process was killed: the turn was resumed, or is taken over to
        end its stop) may still run on Letta, but its lock died with that process: it is cancelled only under
        the lock, if taken within LOCK_WAIT, so that a send another turn is making to the agent is never cancelled.
        """
        try:
            journaled = await self._store.sending_steps(running.turn_id)
        except Exception as exc:  # the database hiccuped: this run's own sends are still cancelled
            log.warning("could not read the turn's journal error=%s", type(exc).__name__)
            journaled = {}
        earlier = {step: run for step, run in journaled.items() if step not in running.sending}
        mine = _agents(running.sending, running.target)
        thread = (running.team_id, running.channel_id, running.thread_ts)
        cancelled: list[str | None] = []
        for agent_id in mine:
            conversation = await self._store.conversation(thread, agent_id) if running.threaded else None
            if self._client.app_server or (conversation or agent_id) in running.holding:  # App Server: its own message
                cancelled.append(await self._cancel(agent_id, conversation, running.runs.of(agent_id)))
        for agent_id in (a for a in _agents(set(earlier), running.target) if a not in mine):
            conversation = await self._store.conversation(thread, agent_id)
            sends = _earlier_sends(earlier, agent_id, running.otid)
            cancelled.append(await self._cancel_locked(agent_id, conversation, sends))
        return [c for c in cancelled if c is not None]

    async def _cancel_locked(self, agent_id: str, conversation: str | None, sends: list[OwnSend]) -> str | None:
        """Cancel under the send lock the runners hold for the route (the agent's, or the conversation's)."""
        async with contextlib.AsyncExitStack() as held:
            try:
                async with asyncio.timeout(LOCK_WAIT):
                    await held.enter_async_context(self._client.locks.hold([conversation or agent_id]))
            except TimeoutError:
                log.info("letta cancel left out: another send holds the agent agent=%s", agent_id)
                return None
            return await self._cancel(agent_id, conversation, sends, dead=True)

    async def _cancel(
        self, agent_id: str, conversation: str | None, sends: list[OwnSend], dead: bool = False
    ) -> str | None:
        """The conversation's run, or by agent the runs of `sends` only (LettaClient.cancel_agent)."""
        try:
            if conversation is not None:
                runs = await self._client.cancel_conversation(conversation, agent_id)
            else:
                runs = await self._client.cancel_agent(agent_id, sends)
                if not runs and not any(s.runs for s in sends) and await self._client.has_conversations():
                    if not dead:
                        log.info("letta cancel left out: the turn's send reported no run yet agent=%s", agent_id)
                        return None
                    # A killed process's send whose run was never journaled (killed before its first event was
                    # written) and not found by its otid (no Redis): as before runs were named, every run of the
                    # agent outside conversations; under the agent's send lock, so no send of this bridge's.
                    log.info("letta cancel of a killed process's send with no run journaled agent=%s", agent_id)
                    runs = await self._client.cancel_agent_outside_conversations(agent_id)
        except LettaError as error:
            log.warning("letta cancel failed agent=%s kind=%s status=%s", agent_id, error.kind, error.status)
            return None
        if runs:
            log.info("letta run cancelled agent=%s conversation=%s runs=%s", agent_id, conversation, ",".join(runs))
        else:  # nothing running; or a 0.11.x server, whose group sends list no run and whose cancel stops nothing
            log.info("letta cancel named no run agent=%s conversation=%s", agent_id, conversation)
        return conversation or agent_id


def _earlier_sends(steps: dict[str, str], agent_id: str, otid: str) -> list[OwnSend]:
    """The sends an earlier run of the turn journaled to the agent by name: each by the run it journaled, else found
    by its otid in the agent's own thread where the server can tell (a Redis server's background send carries
    `step_otid`, bridge_runner.py); a group send, which names no agent, is found by nothing."""
    return [
        OwnSend(step_otid(otid, key) if otid else None, DEFAULT_CONVERSATION, {run} if run else set())
        for key, run in sorted(steps.items())
        if agent_id in key
    ]


def _agents(keys: set[str], target: Target | None) -> list[str]:
    """The agents the journal steps name; a group send's step names none: every member may be running."""
    agents: list[str] = []
    for key in sorted(keys):
        named = _AGENT_ID.findall(key)
        if not named and target is not None:
            named = [a.id for a in (*target.agents, *((target.manager,) if target.manager else ()))]
        agents.extend(a for a in named if a not in agents)
    return agents
