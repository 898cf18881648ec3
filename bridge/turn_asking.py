"""Asking a turn's agents: what they are sent (the input assembled once, replies streamed into drafts where asked
for), the binding's runner (a server without the group send route switches the binding to the bridge runner,
nothing having been sent), a threaded turn's own transcript and conversations, and the runner's events written to
the turn's outbox as they come (a reply and its notes, a reply that shows nothing, an agent's failure in plain
words), posted meanwhile. `turns.py` runs the turn around it: its deadline, its stop, its outcome."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from bridge.approval_desk import ApprovalDesk
from bridge.approvals import TurnApprovals
from bridge.config import Settings
from bridge.domain import AgentFailure, AgentReply, Binding, TurnInput
from bridge.drafts import TurnDrafts
from bridge.letta.chooser import RunnerChooser, group_send_broken
from bridge.letta.errors import Kind, LettaError
from bridge.letta.runners import Runner
from bridge.slack.directory import Directory
from bridge.slack.post import SlackPoster
from bridge.slack.render import shows_nothing
from bridge.stopping import RunningTurn, TrackedJournal, TurnStops
from bridge.store.base import Store
from bridge.store.conversations import thread_scope
from bridge.store.locks import AckFirst
from bridge.store.turn_record import BindingTranscript
from bridge.threads import ThreadPolicy
from bridge.turn_flush import NOTES, REPLY
from bridge.turn_input import InputAssembly
from bridge.turn_words import EMPTY_REPLY, NOTHING_SAID, ROUTE_SWITCH, SERVER_500_HINT, reconnect

if TYPE_CHECKING:
    from bridge.turns import Job

log = logging.getLogger(__name__)

Owe = Callable[["Job", str, str, "str | None"], Awaitable[None]]  # a message the turn owes its thread
Flush = Callable[["Job", TurnDrafts, "RunningTurn | None"], Awaitable[None]]  # what it owes, posted


class TurnAsking:
    """A worker's asking of its turns' agents; what the turn owes its thread is written (`owe`) and posted
    (`flush`) by the worker, which keeps each turn's outbox."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        chooser: RunnerChooser,
        poster: SlackPoster,
        directory: Directory,
        *,
        threads: ThreadPolicy,
        inputs: InputAssembly,
        desk: ApprovalDesk,
        stops: TurnStops,
        ack_first: AckFirst,
        owe: Owe,
        flush: Flush,
        journaled: dict[int, set[str]],
    ) -> None:
        self._settings = settings
        self._store = store
        self._chooser = chooser
        self._poster = poster
        self._directory = directory
        self._threads = threads
        self._inputs = inputs
        self._desk = desk
        self._stops = stops
        self._ack_first = ack_first
        self._owe = owe
        self._flush = flush
        self._journaled = journaled  # a fresh turn's journal steps written so far (TurnJournal's `written`)

    async def converse(
        self, job: Job, binding: Binding, drafts: TurnDrafts, running: RunningTurn, approvals: TurnApprovals
    ) -> int:
        """Run the turn, posting as replies arrive; returns how many failures the thread was told of."""
        turn = job.turn
        asked = await self._inputs.assemble(turn, job.turn_id, binding.target.names)
        if asked.files.missing:
            await self._owe(job, "notice:files", asked.files.note(), None)
        growing = drafts if self._settings.letta_stream_tokens and self._settings.letta_streaming else None
        turn_input = TurnInput(
            text=asked.text, otid=job.otid, sender=asked.speaker, drafts=growing, images=asked.files.images,
            approvals=approvals, tools=self._settings.tools_in(turn.channel_id),
        )
        runner = await self._chooser.choose(binding)
        try:
            return await self.relay_events(job, binding, runner, turn_input, drafts, running)
        except LettaError as exc:
            if exc.kind != Kind.ROUTE_MISSING or runner is not self._chooser.server:
                raise
        # The server has no group send route: nothing was sent, so running the turn here is safe.
        await self._store.set_runner(turn.team_id, turn.channel_id, "bridge", actor="bridge")
        if await self._store.notice_once(turn.team_id, turn.channel_id, "route_missing"):
            await self._owe(job, "notice:route_missing", ROUTE_SWITCH, None)
        log.info("binding switched to the bridge runner channel=%s", turn.channel_id)
        return await self.relay_events(job, binding, self._chooser.bridge, turn_input, drafts, running)

    async def relay_events(
        self,
        job: Job,
        binding: Binding,
        runner: Runner,
        turn_input: TurnInput,
        drafts: TurnDrafts,
        running: RunningTurn,
    ) -> int:
        turn = job.turn
        # A thread that is a Letta conversation has its own transcript: an agent is shown only this thread's replies.
        threaded = runner is self._chooser.appserver or (
            runner is self._chooser.bridge and await self._threads.bridge_run_threaded(turn.channel_id)
        )  # an App Server's threads are always conversations (its agents' `default` is never used)
        scope = thread_scope(turn.channel_id, turn.thread_ts) if threaded else turn.channel_id
        transcript = BindingTranscript(self._store, turn.team_id, scope, thread=threaded)
        running.threaded = threaded
        running.otid = job.otid
        journal = TrackedJournal(
            self._store,
            job.turn_id,
            job.otid,
            turn.team_id,
            scope,
            running.sending,
            self._journaled.get(job.turn_id),
            job.place.leave,
            (lambda: slot.lend(len(running.sending))) if (slot := job.slot) is not None else None,
            running.check,
        )
        if threaded:
            names = binding.target.names

            async def history() -> str:
                return await self._inputs.history(turn, job.turn_id, names)

            threads = self._threads.conversations(turn.team_id, turn.channel_id, turn.thread_ts, history)
            turn_input = replace(turn_input, threads=threads)
        asking = self._ask(job, binding, runner, turn_input, transcript, journal, drafts, running)
        replies, failures = await job.order.ask_while_posting(asking, lambda: self._flush(job, drafts, running))
        if replies == 0 and failures == 0:
            await self._owe(job, "notice:nothing", NOTHING_SAID, None)
        job.ran.update(runner=runner.name, replies=replies, failures=failures)
        return failures

    async def _ask(
        self,
        job: Job,
        binding: Binding,
        runner: Runner,
        turn_input: TurnInput,
        transcript: BindingTranscript,
        journal: TrackedJournal,
        drafts: TurnDrafts,
        running: RunningTurn,
    ) -> tuple[int, int]:
        """The runner's events written to the outbox as they come (posted meanwhile by `relay_events`): how many
        replies and failures."""
        turn = job.turn
        replies = failures = 0
        target = replace(binding.target, saved_at=binding.bound_at)  # a group record older is re-read
        async for event in runner.run(target, turn_input, transcript, journal):
            await self._ack_first.give_way()
            if isinstance(event, AgentReply) and shows_nothing(event.text):
                failures += 1  # nothing to post, and not a success either: the thread is told
                empty = EMPTY_REPLY.format(agent=self._poster.shown_name(event.agent_name))
                await self._owe(job, f"fail:{event.step}:{event.index}", empty, None)
            elif isinstance(event, AgentReply):
                replies += 1
                await self._owe(job, f"{REPLY}{event.step}:{event.index}", event.text, event.agent_name)
                notes = event.notes
                if drafts.showed_tasks(f"{event.step}:{event.index}"):  # its tool calls are in the reply as tasks
                    notes = tuple(n for n in notes if n.kind != "tool")
                if notes and self._settings.shows_reasoning(turn.channel_id):
                    encoded = json.dumps([[n.kind, n.text] for n in notes])
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
                text = self._poster.shown_words(event.message) + reconnect(
                    self._settings, event.target_gone, binding.bound_by
                )
                if event.pending_approval:  # where the card is that it waits for
                    text = await self._desk.refused(turn, event, self._directory.channel_shown)
                if event.kind == Kind.SERVER_ERROR and runner is self._chooser.server:
                    text += SERVER_500_HINT if await self._group_send_broken() else ""
                await self._owe(job, f"fail:{event.step}:{event.index}", text, None)
            job.order.owed()
            if not self._poster.known_postable(turn.channel_id):
                # No agent more is asked before a first post shows that the thread can be posted in (its flush
                # also looks for a stop).
                await job.order.caught_up()
            else:
                # The flush may be busy with a slow post: a stop is looked for here, before the next agent.
                await self._stops.check(running)
        return replies, failures

    async def _group_send_broken(self) -> bool:
        try:
            return group_send_broken(await self._chooser.server_version())
        except LettaError:
            return False
