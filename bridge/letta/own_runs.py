"""The Letta runs the running turn's own sends made, by send-lock key: all a Stop may cancel by agent.

On a server with conversations (0.16.8, Letta Cloud) the agent cancel route, asked without run ids, names every run
of the agent outside its conversations: another client's send to the agent route (a script, the ADE) as well as the
turn's own in the agent's `default` thread. So each send records the runs its events report (`run_id`, on the first
ping already), and the otid it carried, by which a Redis server finds a background run that reported none yet.
The first run a journaled send reports is journaled with its step (STEP_RUN), so that the process that takes a
killed one's turn over cancels exactly that run where nothing else finds it (no Redis). A send a Stop found no run
for (Letta links an otid to its run only once it takes the agent's lock) is marked stopped: its run is cancelled as
soon as its first event names it (`cancel_when_reported`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
_LATE_CANCELS: set[asyncio.Future[object]] = set()  # kept from the collector until they end


@dataclass
class OwnSend:
    """One send of the turn: the runs its events named, and where its otid can be looked up (a background send's
    conversation, `default` for the agent's own thread; None where the server cannot tell)."""

    otid: str | None = None
    conversation: str | None = None
    runs: set[str] = field(default_factory=set)
    journal: Callable[[str], None] | None = None  # told the first run, once (StepRun.report)
    stopped: Callable[[str], None] | None = None  # a Stop that found no run: told the first one, once
    reported: asyncio.Event = field(default_factory=asyncio.Event)  # its first run came

    def saw(self, item: object) -> None:
        run_id = getattr(item, "run_id", None)
        if isinstance(run_id, str) and run_id:
            if not self.runs:
                for told in (self.journal, self.stopped):
                    if told is not None:
                        told(run_id)
                self.journal = self.stopped = None
            self.runs.add(run_id)
            self.reported.set()

    def cancel_when_reported(self, cancel: Callable[[str], Awaitable[object]]) -> None:
        """Mark the send stopped: the run its first event names is cancelled then (`cancel`), beside the stream."""

        def reported(run_id: str) -> None:
            log.info("letta run of a stopped send reported: cancelled now run=%s", run_id)
            task = asyncio.ensure_future(cancel(run_id))
            _LATE_CANCELS.add(task)
            task.add_done_callback(_late_cancel_ended)

        self.stopped = reported


def _late_cancel_ended(task: asyncio.Future[object]) -> None:
    _LATE_CANCELS.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("letta cancel of a stopped send's run failed error=%s", type(error).__name__)


@dataclass(frozen=True)
class StepRun:
    """The step the turn just journaled `sending` to `agent_id`: `report` journals the run its send reports."""

    agent_id: str
    report: Callable[[str], None]


class OwnRuns:
    """The turn's sends by send-lock key (an agent id, a conversation id), in the order they went."""

    def __init__(self) -> None:
        self._sends: dict[str, list[OwnSend]] = {}

    def add(self, keys: Iterable[str], send: OwnSend) -> None:
        for key in keys:
            self._sends.setdefault(key, []).append(send)

    def of(self, key: str) -> list[OwnSend]:
        return list(self._sends.get(key, ()))

    async def stopped_reported(self) -> None:
        """Wait for the sends a Stop found no run for to report theirs (and so have it cancelled): the turn's task,
        cancelled, would close their streams before that."""
        waiting = {id(s): s for sends in self._sends.values() for s in sends if s.stopped and not s.runs}
        await asyncio.gather(*(s.reported.wait() for s in waiting.values()))


# The running turn's sends (stopping.RunningTurn.runs), set for the turn's task and the tasks it starts.
TURN_RUNS: ContextVar[OwnRuns | None] = ContextVar("turn_runs", default=None)
# The step journaled last in this task, taken by the next send to its agent (stopping.TrackedJournal sets it).
STEP_RUN: ContextVar[StepRun | None] = ContextVar("step_run", default=None)


def own_send(keys: Iterable[str], message: Mapping[str, Any], lookup: str | None = None) -> OwnSend:
    """A send going out now under `keys`, recorded as the running turn's (if one runs). `lookup`: the conversation
    its otid can be found in (a background send's)."""
    otid = message.get("otid")
    send = OwnSend(otid if isinstance(otid, str) and otid else None, lookup)
    keys = list(keys)
    step = STEP_RUN.get()
    if step is not None and step.agent_id in keys:
        STEP_RUN.set(None)  # one send per journaled step: a later send is not written under it
        send.journal = step.report
    runs = TURN_RUNS.get()
    if runs is not None:
        runs.add(keys, send)
    return send
