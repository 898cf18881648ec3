"""Running one accepted turn to its end: the runner's replies go through the store's outbox to the thread.

Every message a turn owes the thread (an agent's reply, a failure said in plain words, a notice) is first
written to the outbox, then posted part by part, each part recorded; so a restarted bridge posts what is
missing and never a part twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bridge.config import Settings
from bridge.domain import AgentFailure, AgentReply, Binding, Turn, TurnInput
from bridge.drafts import TurnDrafts
from bridge.letta.chooser import RunnerChooser, group_send_broken
from bridge.letta.errors import Kind, LettaError
from bridge.letta.runners import Runner
from bridge.logs import Redactor
from bridge.metrics import UNMETERED, Metrics
from bridge.slack.decide import clean_text
from bridge.slack.directory import Directory
from bridge.slack.live import LiveMessages
from bridge.slack.post import SlackPoster, SlackPostError
from bridge.store.base import BindingTranscript, OutboxItem, Store, TurnJournal
from bridge.store.conversations import thread_scope
from bridge.store.locks import AckFirst
from bridge.threads import ThreadPolicy

log = logging.getLogger(__name__)

UNBOUND = (
    "This channel is not connected to a Letta group yet. Connect it with `{command} connect` (or an operator with "
    "`python -m bridge channels connect {channel} <group-id>`), then mention me again."
)
ROUTE_SWITCH = (
    "This Letta server cannot run groups itself, so from now on the bridge runs this channel's group, "
    "asking each agent in turn."
)
SERVER_500_HINT = (
    " Letta 0.12.0 to 0.16.4 fail every group send; connecting the channel with `--runner bridge` avoids it."
)
NOTHING_SAID = "No agent had anything to say this time."
DEADLINE_HINT = " The bridge stopped waiting: ask again, or ask an operator to check the Letta server."
CRASHED = "The bridge hit an unexpected error while running this turn; an operator can find it in the logs."


# Outbox sources: an agent's reply, and its reasoning and tool calls (shown where the channel asks).
REPLY = "reply:"
NOTES = "notes:"

THREAD_CONTEXT_HEADER = "Earlier in this Slack thread, before you were asked:"
THREAD_CONTEXT_CHARS = 6000
# Seconds a turn runs before its thread shows "alice is thinking...": a turn answered sooner needs no status line
# (Slack clears it at the first reply anyway), and costs two Slack calls fewer.
STATUS_AFTER = 1.0


def _thinking(names: list[str]) -> str:
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{who} {'is' if len(names) == 1 else 'are'} thinking..."


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} second" + ("" if seconds == 1 else "s")


class StatusLine:
    """A thread's status line, shown only once the turn has run STATUS_AFTER seconds, cleared only if shown."""

    def __init__(self, poster: SlackPoster, channel_id: str, thread_ts: str) -> None:
        self._poster = poster
        self._where = (channel_id, thread_ts)
        self._later: asyncio.Task[None] | None = None
        self._shown = False

    def show_later(self, text: str, delay: float = STATUS_AFTER) -> None:
        self._later = asyncio.ensure_future(self._show(text, delay))

    async def _show(self, text: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._shown = True
        await self._poster.status(*self._where, text)

    async def clear(self) -> None:
        if self._later is not None:
            self._later.cancel()
            await asyncio.gather(self._later, return_exceptions=True)
        if self._shown:
            await self._poster.status(*self._where, "")


@dataclass(frozen=True)
class Job:
    turn: Turn
    turn_id: int
    otid: str
    resumed: bool = False


class TurnWorker:
    metrics: Metrics = UNMETERED  # app.py sets the app's own

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chooser: RunnerChooser,
        poster: SlackPoster,
        directory: Directory,
        fallback: Callable[[Turn], Awaitable[Binding | None]] | None = None,
        live: LiveMessages | None = None,
    ) -> None:
        self._settings = settings
        self._fallback = fallback  # the binding of an unbound channel or DM (the default target), if any
        self._store = store
        self._chooser = chooser
        self._poster = poster
        self._directory = directory
        self._live = live or LiveMessages(poster.client, mode=settings.slack_live_replies)
        self._redactor = Redactor(settings.secrets())
        self._fresh_steps: dict[int, set[str]] = {}  # per running fresh turn: the journal steps written so far
        # Per running fresh turn: what it owes the thread, as added by this run (nothing else can be owed), so
        # that posting does not read the outbox back after every reply.
        self._owed: dict[int, list[OutboxItem]] = {}
        self.ack_first = AckFirst()  # app.py marks each Slack request it answers
        self.threads = ThreadPolicy(
            store, chooser, settings.letta_conversations, frozenset(settings.letta_conversations_except)
        )

    async def run(self, job: Job) -> str:
        """Run the turn to done, partial, failed or unbound (returned). A cancellation (shutdown) leaves it to be
        resumed."""
        turn, s = job.turn, self._settings
        drafts = TurnDrafts(
            self._store, self._poster, self._live, turn, job.turn_id, s.slack_live_edit_seconds, job.resumed
        )
        await self.ack_first.give_way()
        if not job.resumed:
            self._owed[job.turn_id] = []
        try:
            return await self._run(job, drafts)
        finally:
            self._owed.pop(job.turn_id, None)
            self._fresh_steps.pop(job.turn_id, None)

    async def _run(self, job: Job, drafts: TurnDrafts) -> str:
        turn, s = job.turn, self._settings
        binding = await self._store.get_binding(turn.team_id, turn.channel_id)
        if binding is None and self._fallback is not None:
            binding = await self._fallback(turn)
        if binding is None:
            unbound = UNBOUND.format(channel=turn.channel_id, command=s.slack_command)
            await self._owe(job, "notice:unbound", unbound)
            await self._flush(job, drafts)
            await self._store.finish_turn(job.turn_id, "unbound")
            return "unbound"
        # Marked running while the turn starts, before anything is sent (a fresh turn's journal is not looked up,
        # so a turn that may have sent must say so first); 👀 is not waited for. Both done before the turn ends.
        marked = asyncio.ensure_future(self._store.set_turn_status(job.turn_id, "running"))
        seen = asyncio.ensure_future(self._poster.react(turn.channel_id, turn.message_ts, s.slack_working_reaction))
        line = StatusLine(self._poster, turn.channel_id, turn.thread_ts)
        try:
            status, error = await self._run_bound(job, binding, drafts, line, marked)
        finally:
            await line.clear()
            await asyncio.gather(seen, return_exceptions=True)
            await marked
        await self._poster.unreact(turn.channel_id, turn.message_ts, s.slack_working_reaction)
        mark = s.slack_done_reaction if status == "done" else s.slack_failed_reaction
        await self._poster.react(turn.channel_id, turn.message_ts, mark)
        await self._store.finish_turn(job.turn_id, status, error)
        log.info("turn finished turn_id=%s channel=%s status=%s", job.turn_id, turn.channel_id, status)
        return status

    async def _run_bound(
        self, job: Job, binding: Binding, drafts: TurnDrafts, line: StatusLine, marked: asyncio.Future[None]
    ) -> tuple[str, str]:
        """The turn's conversation and its posts; (status, error)."""
        turn, s = job.turn, self._settings
        status, error = "failed", ""
        try:
            if job.resumed:  # a turn that never started here owes the thread nothing yet
                await self._flush(job, drafts)  # whatever a previous run of this turn owed the thread
            try:
                async with asyncio.timeout(s.turn_deadline_seconds):
                    failures = await self._converse(job, binding, drafts, line, marked)
                status = "done" if failures == 0 else "partial"
            except TimeoutError:
                error = f"The agents did not finish within {_duration(s.turn_deadline_seconds)}."
                await self._owe(job, "notice:deadline", error + DEADLINE_HINT)
            except LettaError as exc:
                error = exc.explain(binding.target.description or "the group")
                await self._owe(job, "notice:letta", error)
            except SlackPostError:
                raise
            except Exception:
                log.exception("turn crashed turn_id=%s channel=%s", job.turn_id, turn.channel_id)
                error = CRASHED
                await self._owe(job, "notice:crash", CRASHED)
            await drafts.abandon()
            await self._flush(job, drafts)
        except SlackPostError as exc:
            status, error = "failed", f"Slack refused a post: {exc.error}"
            log.error(
                "turn cannot post turn_id=%s channel=%s slack_error=%s permanent=%s",
                job.turn_id,
                turn.channel_id,
                exc.error,
                exc.permanent,
            )
        return status, error

    async def _converse(
        self, job: Job, binding: Binding, drafts: TurnDrafts, line: StatusLine, marked: asyncio.Future[None]
    ) -> int:
        """Run the turn, posting as replies arrive; returns how many failures the thread was told of."""
        turn = job.turn
        speaker, channel = await asyncio.gather(
            self._directory.user_name(turn.user_id), self._directory.channel_name(turn.channel_id)
        )
        prefix = self._settings.letta_context_prefix.format(user=speaker, channel=channel)
        context = await self._thread_context(job)
        growing = drafts if self._settings.letta_stream_tokens and self._settings.letta_streaming else None
        turn_input = TurnInput(text=context + prefix + turn.text, otid=job.otid, sender=speaker, drafts=growing)
        names = [a.name for a in binding.target.agents]
        line.show_later(_thinking(names))
        runner = await self._chooser.choose(binding)
        await marked
        try:
            return await self._relay_events(job, binding, runner, turn_input, drafts)
        except LettaError as exc:
            if exc.kind != Kind.ROUTE_MISSING or runner is not self._chooser.server:
                raise
        # The server has no group send route: nothing was sent, so running the turn here is safe.
        await self._store.set_runner(turn.team_id, turn.channel_id, "bridge", actor="bridge")
        if await self._store.notice_once(turn.team_id, turn.channel_id, "route_missing"):
            await self._owe(job, "notice:route_missing", ROUTE_SWITCH)
        log.info("binding switched to the bridge runner channel=%s", turn.channel_id)
        return await self._relay_events(job, binding, self._chooser.bridge, turn_input, drafts)

    async def _relay_events(
        self, job: Job, binding: Binding, runner: Runner, turn_input: TurnInput, drafts: TurnDrafts
    ) -> int:
        turn = job.turn
        # A thread that is a Letta conversation has its own transcript: an agent is shown only this thread's replies.
        threaded = runner is self._chooser.bridge and await self.threads.bridge_run_threaded(turn.channel_id)
        scope = thread_scope(turn.channel_id, turn.thread_ts) if threaded else turn.channel_id
        transcript = BindingTranscript(self._store, turn.team_id, scope, thread=threaded)
        journal = TurnJournal(self._store, job.turn_id, job.otid, turn.team_id, scope, self._written(job))
        if threaded:
            threads = self.threads.conversations(turn.team_id, turn.channel_id, turn.thread_ts)
            turn_input = replace(turn_input, threads=threads)
        replies = failures = 0
        async for event in runner.run(binding.target, turn_input, transcript, journal):
            await self.ack_first.give_way()
            if isinstance(event, AgentReply):
                replies += 1
                await self._owe(job, f"{REPLY}{event.step}:{event.index}", event.text, event.agent_name)
                if event.notes and self._settings.shows_reasoning(turn.channel_id):
                    encoded = json.dumps([[n.kind, n.text] for n in event.notes])
                    await self._owe(job, f"{NOTES}{event.step}:{event.index}", encoded, event.agent_name)
            elif isinstance(event, AgentFailure):
                failures += 1
                log.warning(
                    "agent failed turn_id=%s channel=%s target=%s agent=%s kind=%s request_id=%s",
                    job.turn_id,
                    turn.channel_id,
                    binding.target.ref,
                    event.agent_id,
                    event.kind,
                    event.request_id,
                )
                text = event.message
                if event.kind == Kind.SERVER_ERROR and runner is self._chooser.server:
                    text += SERVER_500_HINT if await self._group_send_broken() else ""
                await self._owe(job, f"fail:{event.step}:{event.index}", text)
            await self._flush(job, drafts)
        if replies == 0 and failures == 0:
            await self._owe(job, "notice:nothing", NOTHING_SAID)
        log.info("turn ran turn_id=%s runner=%s replies=%d failures=%d", job.turn_id, runner.name, replies, failures)
        return failures

    def _written(self, job: Job) -> set[str] | None:
        """The steps this run of a fresh turn has written (shared by a rerun on the bridge runner), else None."""
        if job.resumed:
            return None
        return self._fresh_steps.setdefault(job.turn_id, set())

    async def _thread_context(self, job: Job) -> str:
        """The thread's earlier messages, once: when the bot is first mentioned inside an existing thread."""
        turn = job.turn
        if turn.thread_ts == turn.message_ts:
            return ""
        if await self._store.earlier_turns_in_thread(turn.team_id, turn.channel_id, turn.thread_ts, job.turn_id):
            return ""
        earlier = await self._directory.thread_before(turn.channel_id, turn.thread_ts, turn.message_ts)
        if not earlier:
            return ""
        lines = [f"[{who}] {clean_text(text, None)}" for who, text in earlier]
        body = "\n".join(lines)
        if len(body) > THREAD_CONTEXT_CHARS:
            body = "…" + body[-THREAD_CONTEXT_CHARS:]
        return f"{THREAD_CONTEXT_HEADER}\n{body}\n\n"

    async def _group_send_broken(self) -> bool:
        try:
            return group_send_broken(await self._chooser.server_version())
        except LettaError:
            return False

    async def _owe(self, job: Job, source: str, text: str, agent_name: str | None = None) -> None:
        if agent_name is None:
            # Notices can quote what a server echoed back; no secret reaches a thread.
            text = self._redactor.redact(text)
        added = await self._store.outbox_add(job.turn_id, source, agent_name, text)
        owed = self._owed.get(job.turn_id)
        if owed is not None and added is not None:
            owed.append(OutboxItem(added, source, agent_name, text, frozenset()))

    async def _flush(self, job: Job, drafts: TurnDrafts) -> None:
        """Post every part the turn still owes, in order, recording each one. A reply's first part goes over
        its draft when it had one."""
        turn = job.turn
        owed = self._owed.get(job.turn_id)
        for item in list(owed) if owed is not None else await self._store.outbox_pending(job.turn_id):
            if item.source.startswith(NOTES):
                parts = self._poster.note_parts(item.agent_name or "", json.loads(item.text))
            else:
                parts = self._poster.parts(item.agent_name, item.text)
            for index, part in enumerate(parts):
                if index in item.posted:
                    continue
                await self.ack_first.give_way()
                ts = None
                if index == 0 and item.source.startswith(REPLY):
                    ts = await drafts.replace(item.source[len(REPLY) :], part.text)
                if ts is None:
                    ts = await self._poster.post(turn.channel_id, turn.thread_ts, part, check_first=job.resumed)
                await self._store.outbox_posted(item.id, index, ts, last=index == len(parts) - 1)
                self.metrics.reply_posted(item.agent_name)
                if owed is not None:  # a part posted is never posted again, even if a later one fails
                    owed[owed.index(item)] = item = replace(item, posted=item.posted | {index})
            if not parts:
                await self._store.outbox_posted(item.id, 0, "", last=True)
            if owed is not None:
                owed.remove(item)
