"""Where the Slack side and the Letta side meet.

A mention is recorded in the store (before Slack is acknowledged), queued behind earlier turns of the
same binding, run by the binding's runner in a task the relay owns, and each agent's reply is posted to
the thread as soon as the runner yields it. Both sides are spoken to in `bridge.domain` dataclasses.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.config import Settings
from bridge.domain import AgentFailure, AgentReply, Binding, Turn, TurnInput
from bridge.letta.errors import Kind, LettaError
from bridge.letta.runners import Runner, RunnerChooser, group_send_broken
from bridge.logs import Redactor
from bridge.slack.directory import Directory
from bridge.slack.post import SlackPoster, SlackPostError
from bridge.store.base import BindingTranscript, Store

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


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} second" + ("" if seconds == 1 else "s")


@dataclass(frozen=True)
class Job:
    turn: Turn
    turn_id: int
    otid: str


class Relay:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        chooser: RunnerChooser,
        poster: SlackPoster,
        directory: Directory,
        fallback: Callable[[Turn], Awaitable[Binding | None]] | None = None,
    ) -> None:
        self._settings = settings
        self._fallback = fallback  # the binding of an unbound channel or DM (the default target), if any
        self._store = store
        self._chooser = chooser
        self._poster = poster
        self._directory = directory
        self._queues: dict[tuple[str, str], asyncio.Queue[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent_turns)
        self._closing = False
        self._redactor = Redactor(settings.secrets())

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def accept(self, turn: Turn) -> None:
        """Record the turn durably and queue it; returns at once, long before Letta answers."""
        if self._closing:
            log.warning("turn refused while stopping channel=%s ts=%s", turn.channel_id, turn.message_ts)
            return
        otid = str(uuid.uuid4())
        turn_id = await self._store.accept_turn(turn, otid)
        if turn_id is None:
            log.info(
                "duplicate turn dropped event_id=%s channel=%s ts=%s", turn.event_id, turn.channel_id, turn.message_ts
            )
            return
        log.info("turn accepted turn_id=%s event_id=%s channel=%s", turn_id, turn.event_id, turn.channel_id)
        key = (turn.team_id, turn.channel_id)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._spawn(self._drain(key, queue))
        queue.put_nowait(Job(turn, turn_id, otid))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: tuple[str, str], queue: asyncio.Queue[Job]) -> None:
        """One worker per binding: its turns run one at a time, in arrival order."""
        try:
            while not queue.empty():
                job = queue.get_nowait()
                async with self._slots:
                    await self._run(job)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def stop(self, grace: float) -> None:
        """Stop taking work, let running turns finish within `grace` seconds, then cancel what is left."""
        self._closing = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        turn = job.turn
        binding = await self._store.get_binding(turn.team_id, turn.channel_id)
        if binding is None and self._fallback is not None:
            binding = await self._fallback(turn)
        if binding is None:
            await self._say(turn, UNBOUND.format(channel=turn.channel_id, command=self._settings.slack_command))
            await self._store.finish_turn(job.turn_id, "unbound")
            return
        s = self._settings
        await self._poster.react(turn.channel_id, turn.message_ts, s.slack_working_reaction)
        status, error = "failed", ""
        try:
            async with asyncio.timeout(s.turn_deadline_seconds):
                failures = await self._converse(job, binding)
            status = "done" if failures == 0 else "partial"
        except TimeoutError:
            error = (
                f"The agents did not finish within {_duration(s.turn_deadline_seconds)}, so the bridge stopped waiting."
            )
            await self._say(turn, error + " Ask again, or ask an operator to check the Letta server.")
        except LettaError as exc:
            log.warning(
                "turn failed turn_id=%s channel=%s target=%s kind=%s status=%s request_id=%s",
                job.turn_id,
                turn.channel_id,
                binding.target.ref,
                exc.kind,
                exc.status,
                exc.request_id,
            )
            error = exc.explain(binding.target.description or "the group")
            if exc.kind == Kind.SERVER_ERROR and await self._group_send_broken(binding):
                error += SERVER_500_HINT
            await self._say(turn, error)
        except SlackPostError as exc:
            error = f"Slack refused a post: {exc.error}"
        except Exception:
            log.exception("turn crashed turn_id=%s channel=%s", job.turn_id, turn.channel_id)
            error = "The bridge hit an unexpected error while running this turn; an operator can find it in the logs."
            await self._say(turn, error)
        finally:
            await self._poster.unreact(turn.channel_id, turn.message_ts, s.slack_working_reaction)
            done = status in ("done",)
            await self._poster.react(
                turn.channel_id, turn.message_ts, s.slack_done_reaction if done else s.slack_failed_reaction
            )
            await self._store.finish_turn(job.turn_id, status, error)
            log.info("turn finished turn_id=%s channel=%s status=%s", job.turn_id, turn.channel_id, status)

    async def _group_send_broken(self, binding: Binding) -> bool:
        try:
            return await self._chooser.choice(binding) == "server" and group_send_broken(
                await self._chooser.server_version()
            )
        except LettaError:
            return False

    async def _converse(self, job: Job, binding: Binding) -> int:
        """Run the turn and post as it goes; returns how many failures were reported in the thread."""
        turn = job.turn
        speaker = await self._directory.user_name(turn.user_id)
        channel = await self._directory.channel_name(turn.channel_id)
        prefix = self._settings.letta_context_prefix.format(user=speaker, channel=channel)
        turn_input = TurnInput(text=prefix + turn.text, otid=job.otid, sender=speaker)
        runner = await self._chooser.choose(binding)
        try:
            return await self._post_events(job, binding, runner, turn_input)
        except LettaError as exc:
            if exc.kind != Kind.ROUTE_MISSING or runner is not self._chooser.server:
                raise
        # The server has no group send route: nothing was sent, so running the turn here is safe.
        await self._store.set_runner(turn.team_id, turn.channel_id, "bridge", actor="bridge")
        if await self._store.notice_once(turn.team_id, turn.channel_id, "route_missing"):
            await self._say(turn, ROUTE_SWITCH)
        log.info("binding switched to the bridge runner channel=%s", turn.channel_id)
        return await self._post_events(job, binding, self._chooser.bridge, turn_input)

    async def _post_events(self, job: Job, binding: Binding, runner: Runner, turn_input: TurnInput) -> int:
        turn = job.turn
        transcript = BindingTranscript(self._store, turn.team_id, turn.channel_id)
        replies = failures = seq = 0
        async for event in runner.run(binding.target, turn_input, transcript):
            if isinstance(event, AgentReply):
                replies += 1
                for ts in await self._poster.reply(turn.channel_id, turn.thread_ts, event.agent_name, event.text):
                    await self._store.record_post(job.turn_id, seq, event.agent_name, ts)
                    seq += 1
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
                await self._say(turn, event.message)
        if replies == 0 and failures == 0:
            await self._say(turn, NOTHING_SAID)
        log.info("turn ran turn_id=%s runner=%s replies=%d failures=%d", job.turn_id, runner.name, replies, failures)
        return failures

    async def _say(self, turn: Turn, text: str) -> None:
        try:
            # Error details can quote what a server echoed back; no secret reaches a thread.
            await self._poster.notice(turn.channel_id, turn.thread_ts, self._redactor.redact(text))
        except SlackPostError:
            log.warning("could not tell the thread channel=%s ts=%s", turn.channel_id, turn.thread_ts)
