"""Running one accepted turn to its end: whether it runs at all (its stop's end, an unbound channel, one Slack
refuses), its deadline, its stop, its outcome; the agents are asked in `turn_asking.py`.

Every message a turn owes the thread (an agent's reply, a failure said in plain words, a notice) is first
written to the outbox, then posted part by part, each part recorded; so a restarted bridge posts what is
missing and never a part twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bridge.approval_desk import ApprovalDesk
from bridge.approvals import TurnApprovals
from bridge.config import Settings
from bridge.domain import Binding, Turn
from bridge.drafts import TurnDrafts
from bridge.letta.chooser import RunnerChooser
from bridge.letta.errors import LettaError
from bridge.logs import Redactor
from bridge.metrics import Metrics
from bridge.outbox import TurnOutbox
from bridge.post_order import PostOrder
from bridge.presence import Presence
from bridge.settings_secrets import secrets
from bridge.slack.directory import Directory
from bridge.slack.failures import CHANNEL_REFUSALS, SlackAnswer, SlackPostError, answers
from bridge.slack.files import FileFetcher, file_hosts
from bridge.slack.live import LiveMessages
from bridge.slack.post import SlackPoster
from bridge.slack.ratelimits import TURN_CLOCK, TurnClock
from bridge.slack.sessions import Sessions
from bridge.start_order import Place
from bridge.stop_end import StopEnd, say_stopped
from bridge.stopping import RunningTurn, TurnAbandoned, TurnStopped, TurnStops
from bridge.store.base import Store, database_trouble
from bridge.store.locks import AckFirst
from bridge.targets import TargetError
from bridge.threads import DefaultBinding, ThreadPolicy
from bridge.turn_asking import TurnAsking
from bridge.turn_flush import TurnFlush
from bridge.turn_input import InputAssembly
from bridge.turn_shown import TurnShown
from bridge.turn_slot import Slot
from bridge.turn_words import (
    CRASHED,
    DEADLINE_HINT,
    DEFAULT_UNUSABLE,
    DISCONNECTED,
    NOT_RUN,
    STOPPED_DRAFT,
    UNBOUND,
    not_finished_within,
    reconnect,
    who_configures,
)

log = logging.getLogger(__name__)
# What `run` returns for a turn it found no longer its to take (withdrawn or stopped while it waited, or a resumed
# one stopped meanwhile, whose stop's end is then handed back as `stopping`): whoever ended it counts it.
NOT_TAKEN = "not taken"
TOLD_KEPT = 1000  # threads told their channel is not connected, remembered (pruned past this many)
TOLD_SECONDS = 3600.0  # how long a thread told its channel is not connected is remembered, past TOLD_KEPT of them

@dataclass(frozen=True)
class Job:
    turn: Turn
    turn_id: int
    otid: str
    resumed: bool = False
    stopped_by: str | None = None  # stopped while its process was gone: only the stop's end is left (stop_end.py)
    started: bool = False  # a run marked it running: it may have put up signs, a session, drafts
    # What running it showed (runner, replies, failures), for the one line the relay logs when the turn ends.
    ran: dict[str, object] = field(default_factory=dict, compare=False)
    order: PostOrder = field(default_factory=PostOrder, compare=False)  # its replies posted while it asks on
    place: Place = field(default_factory=Place, compare=False)  # among the turns starting (start_order.py)
    slot: Slot | None = field(default=None, compare=False)  # among MAX_CONCURRENT_TURNS (turn_runs.py)
    # Its last try (turn_runs.py: Slack refused the bridge's token while the turn waited for it, or answered at once
    # each time and still took none of its posts): a post Slack does not take ends the turn failed, as any refusal,
    # instead of waiting for Slack again.
    last_try: bool = False
    # Called once the turn is known to go to its agents (taken, its channel connected, Slack taking posts there):
    # its thread's queue notice then promised what comes (notices.py).
    going: Callable[[], None] = field(default=lambda: None, compare=False)


class TurnWorker:

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chooser: RunnerChooser,
        poster: SlackPoster,
        directory: Directory,
        fallback: DefaultBinding | None = None,
        live: LiveMessages | None = None,
    ) -> None:
        self._settings = settings
        self._fallback = fallback  # the binding of an unbound channel or DM (the default target), if any
        self._store = store
        self._chooser = chooser
        self._poster = poster
        self._live = live or LiveMessages(poster.client, None, settings.slack_live_replies, settings.slack_task_display)
        self.ack_first = AckFirst()  # app.py marks each Slack request it answers; turns give way to them
        self._redactor = Redactor(secrets(settings))
        self.threads = ThreadPolicy(
            store, chooser, settings.letta_conversations, frozenset(settings.letta_conversations_except), fallback
        )
        self.stops = TurnStops(store, chooser.client, settings.turn_stop_poll_seconds)
        self.sessions = Sessions(poster.client, settings.slack_sessions, settings.slack_stop_button)
        self.desk = ApprovalDesk(store, settings)
        self.stop_end = StopEnd(store, self.stops, poster, self.sessions, self.desk, settings)
        self._shown = TurnShown(settings, store, poster, self.sessions, directory)  # a turn's session or signs
        # Each running turn's outbox, and for a fresh turn the journal steps it wrote (TurnJournal's `written`).
        self._outboxes: dict[int, TurnOutbox] = {}
        # thread -> (its newest turn then, when) as it was told that it is not connected
        self._told_unbound: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._journaled: dict[int, set[str]] = {}
        fetcher = FileFetcher(lambda: poster.client.token, hosts=file_hosts(settings.slack_api_url))
        self._directory = directory
        self._inputs = InputAssembly(settings, store, directory, fetcher)
        self._posting = TurnFlush(settings, poster, self.stops, self.ack_first)
        self._asking = TurnAsking(
            settings, store, chooser, poster, directory, threads=self.threads, inputs=self._inputs, desk=self.desk,
            stops=self.stops, ack_first=self.ack_first, owe=self._owe, flush=self._flush, journaled=self._journaled,
        )

    @property
    def metrics(self) -> Metrics:
        return self._posting.metrics

    @metrics.setter
    def metrics(self, metrics: Metrics) -> None:
        """app.py sets the app's own."""
        self._posting.metrics = metrics

    @property
    def chooser(self) -> RunnerChooser:
        return self._chooser

    @property
    def store(self) -> Store:
        return self._store

    def expect(self, job: Job) -> None:
        """The job is about to wait for its slot and place: its channel's name, which the agents' input gives, is
        asked for now, so that Slack's round trip overlaps the wait instead of lengthening the turn's preparation
        (which others wait behind, in a burst)."""
        if job.stopped_by is None:
            self._directory.channel_name_soon(job.turn.channel_id)

    async def slack_answers(self, team_id: str) -> SlackAnswer:
        """Whether the turn's Slack answers now (its posts failed while Slack was down), or refuses the token."""
        return await answers(self._poster.client)

    async def run(self, job: Job) -> str:
        """Run the turn to done, partial, failed, unbound or stopped (returned; NOT_TAKEN when it was no longer
        waiting). A cancellation (shutdown) leaves it to be resumed."""
        self._outboxes[job.turn_id] = TurnOutbox(self._store, job.turn_id, fresh=not job.resumed)
        if not job.resumed:
            self._journaled[job.turn_id] = set()
        try:
            return await self._take(job)
        finally:
            self._outboxes.pop(job.turn_id, None)
            self._journaled.pop(job.turn_id, None)

    def _outbox(self, job: Job) -> TurnOutbox:
        return self._outboxes[job.turn_id]  # `run` made it for the whole of the turn

    async def _take(self, job: Job) -> str:
        await self.ack_first.give_way()
        turn, s = job.turn, self._settings
        binding = await self._store.get_binding(turn.team_id, turn.channel_id)
        unusable = ""  # why the default target, which this turn goes to, cannot be used
        if binding is None and self._fallback is not None:
            try:
                binding = await self._fallback(turn.team_id, turn.channel_id)
            except TargetError as exc:
                unusable = str(exc)
        if job.stopped_by is not None:  # never run again: its stop is ended here, the agents are not asked
            await self.stop_end.finish(
                turn, job.turn_id, job.stopped_by, binding.target if binding else None, job.otid
            )
            if turn.files:
                await self._inputs.drop(job.turn_id)
            return "stopped"
        # Taken from the queue before anything is said or asked: a turn withdrawn or stopped since it was read
        # was ended (and counted) by that update, and is neither run nor told its channel is not connected. Its
        # words and files are read as it is taken: an edit while it waited (for its binding's turn, or a slot) is
        # answered, and a file it took out is neither fetched nor sent.
        # A turn that started before (its process gone) runs with the binding it started with, not the channel's
        # new one: its earlier agents' sends are settled, and agents nobody addressed are not asked mid-turn.
        taken = await self._store.take_turn(job.turn_id, binding, turn.channel_id)
        if taken is None:
            return NOT_TAKEN
        if taken.binding is not None and taken.binding != binding:
            binding, unusable = taken.binding, ""
            log.info("turn resumed with the binding it started with, not the channel's new one")
        if taken.words != turn.text or taken.files != turn.files:
            job = replace(job, turn=replace(turn, text=taken.words, files=taken.files))
            turn = job.turn
        details = s.shows_reasoning(turn.channel_id)
        drafts = TurnDrafts(
            self._store, self._poster, self._live, turn, job.turn_id, s.slack_live_edit_seconds, job.resumed, details,
            job.order.caught_up,
        )
        if binding is None and unusable:
            notice = DEFAULT_UNUSABLE.format(target=" ".join(s.default_target), reason=unusable)
            return await self._end_unrun(job, drafts, "notice:default", notice, "failed", unusable)
        if binding is None:
            return await self._end_unbound(job, drafts)
        refused = await self._poster.still_refused(turn.channel_id)  # archived, the bot removed, deleted
        if refused is not None:  # the agents are not asked: nobody would see the answers they would remember
            why = CHANNEL_REFUSALS[refused]
            log.warning("%s user=%s slack_error=%s", NOT_RUN.format(why=why), turn.user_id, refused)
            if turn.files:
                await self._inputs.drop(job.turn_id)
            await self._store.finish_turn(job.turn_id, "failed", f"not run: Slack refused posts there ({refused})")
            return "failed"
        job.going()
        async with self.stops.track(job.turn_id, turn.team_id, turn.channel_id, turn.thread_ts) as running:
            running.target = binding.target
            status = await self._run(job, binding, drafts, running)
        if turn.files:
            await self._inputs.drop(job.turn_id)  # the turn is over: its files' bytes are kept no longer
        return status

    async def _end_unbound(self, job: Job, drafts: TurnDrafts) -> str:
        """A turn of a channel that is not connected, said in its thread: "not connected yet", or, once it was
        disconnected, so. The turns that were already waiting in a thread when it was told (follow-ups queued when
        the channel was disconnected) end without a notice of their own: one notice, not one per turn."""
        turn, s = job.turn, self._settings
        thread = (turn.team_id, turn.channel_id, turn.thread_ts)
        told = self._told_unbound.get(thread)
        if told is not None and job.turn_id <= told[0]:
            log.info("turn not run: its channel is not connected, as its thread was told while it waited")
            return await self._end_unrun(job, drafts, "", "", "unbound")
        last = await self._store.history(turn.team_id, turn.channel_id, limit=1)
        words = DISCONNECTED if last and last[0].action == "disconnect" else UNBOUND
        now = time.monotonic()
        if len(self._told_unbound) >= TOLD_KEPT:
            self._told_unbound = {k: t for k, t in self._told_unbound.items() if t[1] > now - TOLD_SECONDS}
        # The turns accepted in the thread by now are waiting behind this one: its notice tells them too.
        self._told_unbound[thread] = (await self._store.last_turn_in_thread(*thread), now)
        notice = words.format(who=who_configures(s), command=s.slack_command)
        return await self._end_unrun(job, drafts, "notice:unbound", notice, "unbound")

    async def _end_unrun(
        self, job: Job, drafts: TurnDrafts, source: str, notice: str, status: str, error: str = ""
    ) -> str:
        """A turn that cannot run ended with its notice (none: its thread was told already); what an earlier run
        of it (in a process gone since, its channel disconnected meanwhile) put up is taken back (session or
        signs), its drafts closed."""
        if notice:
            await self._owe(job, source, notice)
        if job.started:
            await drafts.abandon()
        try:
            await self._flush(job, drafts)
        except SlackPostError as exc:  # archived, the bot removed: said in the log, never tried again
            if exc.unavailable and not job.last_try:  # Slack was down: run again once it answers (turn_runs.py)
                raise
            log.warning("turn notice not posted: Slack refused it slack_error=%s", exc.error)
            error = error or f"Slack refused the notice: {exc.error}"
        if job.started:
            await self._shown.take_back(job.turn)
        await self._store.finish_turn(job.turn_id, status, error)
        return status

    async def _run(self, job: Job, binding: Binding, drafts: TurnDrafts, running: RunningTurn) -> str:
        presence = await self._shown.start(job.turn, job.turn_id, job.resumed, binding.target.agents, running)
        try:
            return await self._run_shown(job, binding, drafts, running, presence)
        finally:
            presence.abandon()  # a no-op once it ended; a cancelled turn sends no more signs

    async def _run_shown(
        self, job: Job, binding: Binding, drafts: TurnDrafts, running: RunningTurn, presence: Presence
    ) -> str:
        turn, s = job.turn, self._settings
        status, error = "failed", ""
        try:
            inner: asyncio.Task[int] | None = None
            approvals = TurnApprovals(
                self.desk, self._poster, self.sessions, turn, job.turn_id, running, s.approval_timeout_seconds,
                job.resumed, job.order.caught_up, job.slot, lambda source, text: self._owe(job, source, text),
            )
            try:
                await self._flush(job, drafts, running)  # whatever a previous run of this turn owed the thread
                running.check()  # a stop that came while there was no task yet to cancel: Letta is not asked
                clock = TurnClock()
                token = TURN_CLOCK.set(clock)  # the turn's task and those it starts: Slack's rate limits not counted
                inner = running.task = asyncio.create_task(self._converse(job, binding, drafts, running, approvals))
                try:
                    async with asyncio.timeout(s.turn_deadline_seconds) as approvals.deadline:
                        clock.deadline = approvals.deadline
                        failures = await inner
                finally:
                    clock.deadline = None  # what the turn does after its block (its end, its notices) has no clock
                    TURN_CLOCK.reset(token)
                # `partial` only when some agent answered: a turn nobody answered is `failed` (operators alert on it).
                status = "done" if failures == 0 else "partial" if job.ran.get("replies") else "failed"
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running.stopped_by is None or (task is not None and task.cancelling()):
                    if inner is not None:
                        inner.cancel()  # the bridge is stopping: the turn stays recorded for the next start
                    raise
                status, error = "stopped", f"stopped by {running.stopped_by}"
            except TurnStopped as stop:
                running.stopped_by = running.stopped_by or stop.by
                if not running.cancelling:  # a stop only recorded (another process's): its runs cancelled here
                    await self.stops.cancel_letta(running)
                status, error = "stopped", f"stopped by {stop.by}"
            except TimeoutError:
                error = not_finished_within(s.turn_deadline_seconds)
                log.warning(
                    "turn past its deadline turn_id=%s channel=%s deadline_s=%g",
                    job.turn_id, turn.channel_id, s.turn_deadline_seconds,
                )
                # A run left going would answer nobody, and the thread's next send to its agent would wait
                # behind it (and past its own deadline): it is cancelled, as a person's Stop cancels it.
                await self.stops.cancel_letta(running)
                await self._owe(job, "notice:deadline", error + DEADLINE_HINT)
            except LettaError as exc:
                error = exc.explain(binding.target.description or "the group")
                error += reconnect(s, exc.target_gone, binding.bound_by)
                await self._owe(job, "notice:letta", error)
            except (SlackPostError, TurnAbandoned) as exc:
                if isinstance(exc, SlackPostError) and exc.unavailable and not job.last_try:
                    raise  # Slack was down: the run made again (turn_runs.py) takes up the agents still answering
                if running.sending:  # the agent asked while the post was made answers nobody now
                    await self.stops.cancel_letta(running)
                raise
            except Exception as exc:
                if database_trouble(exc):  # the turn's runs (turn_runs.py) make it again once the database answers
                    raise
                log.exception("turn crashed turn_id=%s channel=%s", job.turn_id, turn.channel_id)
                error = CRASHED
                await self._owe(job, "notice:crash", CRASHED)
            if status != "stopped":
                await drafts.abandon(finished=status != "failed")
                try:
                    await self._flush(job, drafts, running)
                except TurnStopped as stop:  # a stop recorded as the agents finished: what is owed stays unposted
                    running.stopped_by = running.stopped_by or stop.by
                    status, error = "stopped", f"stopped by {running.stopped_by}"
                refused = self._outbox(job).refused
                if status == "done" and refused:  # a part is missing, said in its place: not all went well
                    status, error = "partial", f"Slack refused {refused} part(s) of the replies"
            if status == "stopped":
                by = running.stopped_by or ""
                if not await drafts.abandon(STOPPED_DRAFT.format(user=by)):
                    await say_stopped(self._poster, self._outbox(job), turn, by, check_first=False)
        except SlackPostError as exc:
            if exc.unavailable and not job.last_try:  # Slack was down: run again once it answers (turn_runs.py)
                raise
            refusal = "the bridge's token" if exc.unavailable else exc.error
            status, error = "failed", f"Slack refused a post: {refusal}"
            log.error(
                "turn cannot post turn_id=%s channel=%s slack_error=%s permanent=%s",
                job.turn_id,
                turn.channel_id,
                exc.error,
                exc.permanent,
            )
        await self._shown.end(turn, running, presence, status)
        await self._store.finish_turn(job.turn_id, status, error)
        return status

    async def _converse(
        self, job: Job, binding: Binding, drafts: TurnDrafts, running: RunningTurn, approvals: TurnApprovals
    ) -> int:
        """Ask the agents (turn_asking.py), posting as replies arrive: how many failures the thread was told of."""
        return await self._asking.converse(job, binding, drafts, running, approvals)

    async def _owe(self, job: Job, source: str, text: str, agent_name: str | None = None) -> None:
        if agent_name is None:
            # Notices can quote what a server echoed back; no secret reaches a thread.
            text = self._redactor.redact(text)
        await self._outbox(job).add(source, agent_name, text)

    async def _flush(self, job: Job, drafts: TurnDrafts, running: RunningTurn | None = None) -> None:
        t = job.turn
        await self._posting.flush(
            self._outbox(job), job.turn_id, t.channel_id, t.thread_ts, t.message_ts, job.resumed, drafts, running
        )
