"""The runners' `Transcript` and `Journal` over the Store: what a binding's agents have not seen, and each
send of a turn, journaled before it is made."""

from __future__ import annotations

from bridge.domain import AgentFailure, AgentReply, StepRecord
from bridge.store.base import Store


class BindingTranscript:
    """Adapts the store to the runners' `Transcript` for one binding, or for one of its threads when the thread
    is a Letta conversation (`channel_id` is then `thread_scope(channel, thread_ts)`)."""

    def __init__(self, store: Store, team_id: str, channel_id: str, thread: bool = False) -> None:
        self._store = store
        self._team = team_id
        self._channel = channel_id
        self._thread = thread

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int]:
        return await self._store.unseen(self._team, self._channel, agent_id, from_start=self._thread)


class TurnJournal:
    """Adapts the store to the runners' `Journal` for one turn; a bridge-run agent's reply moves the
    binding's transcript in the same transaction as the step's outcome.

    `written` is given for a turn that started fresh in this process: it had no steps before, so a step not
    written since (the keys this set collects) has no record, and looking for one needs no read.
    """

    def __init__(
        self, store: Store, turn_id: int, otid: str, team_id: str, channel_id: str, written: set[str] | None = None
    ) -> None:
        self._store = store
        self._turn_id = turn_id
        self.otid = otid
        self._team = team_id
        self._channel = channel_id
        self._written = written

    async def step(self, key: str) -> StepRecord | None:
        if self._written is not None and key not in self._written:
            return None
        return await self._store.get_step(self._turn_id, key)

    async def sending(self, key: str) -> None:
        if self._written is not None:
            self._written.add(key)  # first: a record may exist as soon as the write is under way
        await self._store.step_sending(self._turn_id, key)

    async def answered(
        self,
        key: str,
        replies: list[AgentReply],
        failure: AgentFailure | None = None,
        seen_upto: int | None = None,
    ) -> None:
        # An agent's second send in one turn (round robin past its members) is keyed `<agent id>#2`.
        seen = None if seen_upto is None else (self._team, self._channel, key.partition("#")[0], seen_upto)
        if self._written is not None:
            self._written.add(key)
        await self._store.step_answered(self._turn_id, key, replies, failure, seen)
