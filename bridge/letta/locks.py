"""The bridge's own per-agent (and per-conversation) send locks; Letta locks nothing without Redis.

A key is an agent id or a conversation id, and a conversation is made per Slack thread, so a lock is kept only
while someone holds it or waits for it: the map would otherwise grow with every thread the bridge has ever seen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from bridge.keyed_locks import KeyedLocks

# The send-lock keys the running turn's sends hold (stopping.RunningTurn.holding, set for the turn's task and the
# tasks it starts): on a REST server a Stop cancels only those agents' runs. A send journaled and still waiting for
# its lock, which another turn's send holds, has made no run: Letta's agent cancel would end that turn's run instead.
TURN_HOLDS: ContextVar[set[str] | None] = ContextVar("turn_holds", default=None)
_SENDING: ContextVar[tuple[str, ...]] = ContextVar("sending_keys", default=())  # the keys the send in hand added


@contextmanager
def held_by_turn(keys: Iterable[str]) -> Iterator[None]:
    """Counted as the running turn's while a send holds the locks of `keys` (all of them granted), and after a send
    cut short under them (its run may go on at Letta: still the turn's to cancel, as the post-order path does)."""
    holds = TURN_HOLDS.get()
    if holds is None:
        yield
        return
    mine = [key for key in keys if key not in holds]  # a key held already is released by its outer holder
    holds.update(mine)
    before = _SENDING.get()
    _SENDING.set(tuple(mine))
    try:
        yield
        holds.difference_update(mine)  # not reached when the send was cut short
    finally:
        # A later send's busy wait never lets go of these keys. Not `reset`: an async generator holding this may
        # be closed from another task, whose context has no token of this one.
        _SENDING.set(before)


class BusyWait:
    """While the send in hand waits out a run Letta says is busy in its conversation (a 409 from another client:
    the ADE, a script), its keys are not the turn's: a Stop then cancels nothing of that run, and the turn's task,
    cancelled, never sends. From the first 409 until an attempt's answer is not one (the send was taken), the
    attempts in flight included: a Stop while one is asked would otherwise cancel the other client's run."""

    def __init__(self) -> None:
        self._holds: set[str] | None = None
        self._mine: tuple[str, ...] = ()

    def let_go(self) -> None:
        holds, mine = TURN_HOLDS.get(), _SENDING.get()
        if self._holds is not None or holds is None or not mine:
            return
        holds.difference_update(mine)
        self._holds, self._mine = holds, mine

    def take_back(self) -> None:
        if self._holds is not None:
            self._holds.update(self._mine)
            self._holds = None


QUIET_KEPT = 10_000  # keys remembered as quiet (or unsettled); one forgotten costs a look at its runs

# Waits until a send cut short has ended at Letta, as far as Letta can tell: for a send that lists no run (a 0.11.x
# group send), what its members stored (runners.ServerRunner).
LeftGoing = Callable[[], Awaitable[None]]
V = TypeVar("V")


@dataclass
class EarlierSends:
    """What this process knows of the Letta sends made before it started. `ended` is set at start-up when the
    store's journal shows none written within the last minutes that nobody saw end (a step still `sending` or
    failed, a decision sent and not settled): a clean stop, or nothing sent lately. Until then it is False, and
    every key counts as possibly busy until a send of this process ends under it."""

    ended: bool = False


class AgentLocks:
    """Letta runs two sends to one agent (or one conversation) at once and mixes their contexts, so the bridge
    never does. Keys are agent ids, or conversation ids for sends to a conversation: its own thread.

    A lock keeps this process's sends apart, not a send an earlier process made (killed mid-send, or stopped past
    its grace) nor one of this process's own that was cut short: Letta runs those to their end. A key is `quiet`
    once a send of this process under it ended; after an earlier process whose sends may still run (`earlier`),
    any other key may still have such a run going, which the Letta client waits out before it sends
    (`LettaClient._one_send`). Otherwise only the keys `unsettle`d here are."""

    # Called with the agents whose send records a dead process left and this one took over (Postgres; clients.py
    # sets it): the sends that list no run among them are found in the journal.
    groups_left: Callable[[list[str]], Awaitable[None]] | None = None

    def __init__(self, earlier: EarlierSends | None = None) -> None:
        self._locks = KeyedLocks()
        self._quiet: OrderedDict[str, None] = OrderedDict()
        self._unsettled: OrderedDict[str, LeftGoing | None] = OrderedDict()
        self._earlier = earlier or EarlierSends()
        self._forgot = False  # an unsettled key fell out of the map: every key not quiet is unsure again

    def unsure(self, keys: Iterable[str]) -> list[str]:
        """The keys under which a run this process did not see end may still be going."""
        if self._earlier.ended and not self._forgot:
            return [key for key in keys if key in self._unsettled]
        return [key for key in keys if key not in self._quiet]

    def quiet(self, key: str) -> None:
        """A send under `key` ended here, or `key` is a conversation this process made: no run is left going."""
        self._unsettled.pop(key, None)
        _remember(self._quiet, key, None)

    def go_on(self) -> None:
        """Called before a send made after a wait under the lock (the runs of an earlier send, a busy conversation
        or a 429 waited out): nothing here; the bridge's locks stop a worker whose lease may have been lost
        meanwhile (clients.py)."""

    def unsettle(self, key: str, left: LeftGoing | None = None) -> None:
        """A send under `key` was cut short (or another process's was taken over): its run may still be going;
        `left` waits for the end of a send Letta lists no run for."""
        self._quiet.pop(key, None)
        if _remember(self._unsettled, key, left or self._unsettled.get(key)):
            self._forgot = True

    def left_going(self, key: str) -> LeftGoing | None:
        """How to wait for the send cut short under `key` that Letta lists no run for, if that is what it was."""
        return self._unsettled.get(key)

    @asynccontextmanager
    async def hold(self, agent_ids: Iterable[str]) -> AsyncIterator[None]:
        # Sorted so that two group turns sharing agents cannot deadlock.
        async with AsyncExitStack() as stack:
            for agent_id in sorted(set(agent_ids)):
                await stack.enter_async_context(self._locks.hold(agent_id))
            yield


def _remember(keys: OrderedDict[str, V], key: str, value: V) -> bool:
    """Add `key` as the newest; True when the oldest had to be forgotten to keep QUIET_KEPT."""
    keys[key] = value
    keys.move_to_end(key)
    if len(keys) <= QUIET_KEPT:
        return False
    keys.popitem(last=False)
    return True
