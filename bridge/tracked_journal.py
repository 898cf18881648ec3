"""The running turn's journal: each send journaled before it goes, counted as in flight until answered (what a
Stop cancels on Letta), and the run its send reported journaled with its step, so that the process that takes a
killed one's turn over cancels exactly that run (letta/own_runs.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.domain import AgentFailure, AgentReply
from bridge.letta.own_runs import STEP_RUN, StepRun
from bridge.store.base import Store
from bridge.store.turn_record import TurnJournal

log = logging.getLogger(__name__)


class TrackedJournal(TurnJournal):
    """The turn's journal, also remembering which sends are in flight (the ones a stop cancels on Letta)."""

    def __init__(
        self,
        store: Store,
        turn_id: int,
        otid: str,
        team_id: str,
        channel_id: str,
        sending: set[str],
        written: set[str] | None = None,
        on_send: Callable[[], None] | None = None,
        on_answered: Callable[[], None] | None = None,
        stopped: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(store, turn_id, otid, team_id, channel_id, written)
        # Raises TurnStopped once a stop was delivered here: no agent is asked after it, even while the stop waits on
        # Letta's cancel before it cancels the turn's task (an agent that says nothing gives no event to check at).
        self._stopped = stopped
        self._sending = sending
        self._on_send = on_send  # the turn's first send is going: its place among the turns starting is given up
        self._on_answered = on_answered  # a send answered: the turn's slot may be lent while its cards wait
        self._writes: set[asyncio.Future[None]] = set()  # the runs being journaled (kept from the collector)

    async def sending(self, key: str) -> None:
        if self._stopped is not None:
            self._stopped()
        # Counted as this run's before the write: a stop reading the journal meanwhile must not take the step for an
        # earlier process's send (whose agent it would wait on, held by this very send, and leave uncancelled).
        self._sending.add(key)
        try:
            await super().sending(key)
        except BaseException:
            self._sending.discard(key)
            raise
        if self._stopped is not None:
            self._stopped()  # a stop delivered during the write: nothing is sent
        if self._on_send is not None:
            self._on_send()
        agent_id = key.partition("#")[0]
        STEP_RUN.set(StepRun(agent_id, lambda run_id: self._journal_run(key, run_id)))

    def _journal_run(self, key: str, run_id: str) -> None:
        """Journal the run the step's send reported, beside the send (one write per send, never holding it up)."""
        write = asyncio.ensure_future(self._store.step_run(self._turn_id, key, run_id))
        self._writes.add(write)
        write.add_done_callback(self._run_written)

    def _run_written(self, write: asyncio.Future[None]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and (error := write.exception()) is not None:
            log.warning("could not journal the step's run error=%s", type(error).__name__)

    async def answered(
        self,
        key: str,
        replies: list[AgentReply],
        failure: AgentFailure | None = None,
        seen_upto: int | None = None,
    ) -> None:
        await super().answered(key, replies, failure, seen_upto)
        self._sending.discard(key)
        if self._on_answered is not None:
            self._on_answered()
