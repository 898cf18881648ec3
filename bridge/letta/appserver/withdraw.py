"""Taking back an input the bridge sent: one it stopped waiting for, one whose turn passed its deadline, one a
person stopped. What the server does (0.34.12, tests/real/test_appserver_real.py; README §6, §8):

- A run-less `abort_message` stops whatever turn the conversation runs, whoever sent it, and parks every input
  queued behind it (`paused`) until `resume_queue` or the next input, which then runs with it: aimed at a
  queued input, it stops the turn ahead and leaves the queued one to run later.
- With `run_id` it stops only that run; another id is answered `aborted: false` and nothing changes. A run has
  an id only once the model has begun to answer (`update_loop_status` maps it to our `client_message_id`): an
  abort naming it before then is refused as well.
- `remove_queue_item` takes a queued input out by its queue item id (`update_queue`): it never runs.
- An input is accepted, and runs, even after the bridge stopped waiting (a stalled server works through what
  it was sent when it resumes), and an abort that reaches the server before that turn has begun is answered
  `aborted: false`.

So `Sent` follows what the server says of one input (fed every frame of its conversation as it arrives, read or
not), and `withdraw` acts on it by name: removed while queued; aborted by its run id while that run is active;
aborted run-less only while it is the conversation's current turn, which is safe because the bridge holds the
conversation's send lock throughout (no other turn of the bridge can be current there); an abort answered
`aborted: false` is tried again while the input's turn has not ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.letta.appserver import outgoing, wire
from bridge.letta.appserver.socket import Dropped, Item
from bridge.letta.errors import LettaError

log = logging.getLogger(__name__)

RETRY = 0.2  # seconds between two tries when the server said nothing new


@dataclass(eq=False)
class Sent:
    """One input and what the server has said of it so far."""

    runtime: wire.Runtime
    otid: str
    request_id: str
    written: bool = False  # the frame left the bridge
    connection: int = 0  # the socket connection it left on
    accepted: bool | None = None
    item: str | None = None  # its queue item id while it waits in the queue
    started: bool = False  # it is (or was) the conversation's current turn
    runs: set[str] = field(default_factory=set)
    active: str | None = None  # its run the server runs now
    finished: bool = False  # its turn ended, or it left the queue without running
    dropped: bool = False  # its connection was lost: the server ends what that socket started
    aborted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def over(self) -> bool:
        return self.finished or self.dropped or self.accepted is False or self.aborted

    def sent_on(self, connection: int) -> None:
        self.written, self.connection = True, connection

    def accept(self, answer: wire.InputAccepted) -> None:
        self.accepted = answer.accepted
        self.started = self.started or (answer.accepted and answer.disposition == "started")
        self.changed.set()

    def see(self, item: Item) -> None:
        """Called by the socket with every frame of the conversation (and a lost connection) as it arrives."""
        if isinstance(item, Dropped):
            self.dropped = self.dropped or (self.written and item.connection >= self.connection)
        elif isinstance(item, wire.InputAccepted) and item.request_id == self.request_id:
            self.accept(item)  # an answer that came after the bridge stopped waiting for it
        elif isinstance(item, wire.UpdateQueue):
            self._queue(item)
        elif isinstance(item, wire.StreamDelta) and isinstance(item.delta, wire.UserDelta):
            if item.delta.otid == self.otid:  # a queued input's echo: it starts now
                self.started, self.item = True, None
        elif isinstance(item, wire.UpdateLoopStatus):
            status = item.loop_status
            self.runs.update(run for run, ids in status.client_message_ids_by_run_id.items() if self.otid in ids)
            self.active = next((run for run in status.active_run_ids if run in self.runs), None)
            self.started = self.started or self.active is not None
        elif isinstance(item, wire.TurnFinished) and (self.started or item.run_id in self.runs):
            self.finished, self.active = True, None
        else:
            return
        self.changed.set()

    def _queue(self, update: wire.UpdateQueue) -> None:
        for waiting in update.queue:
            if waiting.client_message_id == self.otid:
                self.item = waiting.id
        for gone in update.removed:
            if gone.client_message_id == self.otid:
                self.item = None
                self.started = self.started or gone.disposition == "dequeued"
                self.finished = self.finished or gone.disposition == "cancelled"

    async def ended(self) -> None:
        """Until its connection is lost (the server ends what that socket started) or its turn ends."""
        while not (self.dropped or self.finished):
            await self.wait(1.0)

    async def wait(self, within: float) -> None:
        """Until the server says something new of it, or `within` seconds."""
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):  # not wait_for, which can drop a cancel (socket.Subscription.next)
                await self.changed.wait()


Ask = Callable[[outgoing.Sent, type[wire.Answer], float], Awaitable[wire.Answer]]  # AppServerClient._ask


async def withdraw(sent: Sent, ask: Ask, new_id: Callable[[str], str], within: float, answer_within: float) -> bool:
    """Take `sent` back within `within` seconds, by name where the server gave one; True when the server
    stopped it or took it out of its queue. Only while the bridge holds the conversation's send lock. `ask`
    sends one request and waits up to `answer_within` seconds for its answer."""
    if not sent.written:
        return False

    async def abort(run_id: str | None) -> bool:
        frame = outgoing.AbortMessage(request_id=new_id("abort"), runtime=sent.runtime, run_id=run_id)
        with contextlib.suppress(LettaError):
            answer = await ask(frame, wire.AbortMessageResponse, answer_within)
            return isinstance(answer, wire.AbortMessageResponse) and answer.aborted
        return False

    async def remove(item_id: str) -> bool:
        frame = outgoing.RemoveQueueItem(request_id=new_id("remove"), runtime=sent.runtime, item_id=item_id)
        with contextlib.suppress(LettaError):  # `success: false`: it left the queue meanwhile (it runs, or ran)
            await ask(frame, wire.RemoveQueueItemResponse, answer_within)
            return True
        return False

    loop = asyncio.get_running_loop()
    ends = loop.time() + within
    while not sent.over:
        if sent.item is not None and not sent.started:
            if await remove(sent.item):
                sent.finished = True
                return True
        elif sent.started and sent.active is not None and await abort(sent.active):
            sent.aborted = True
        elif sent.started and await abort(None):  # its own turn, with no run id (yet), or between two runs
            sent.aborted = True
        if sent.aborted:
            return True
        left = ends - loop.time()
        if left <= 0:
            break
        await sent.wait(min(left, RETRY))
    if not sent.over:
        log.warning(
            "app server: input otid=%s was not withdrawn within %.0f s (%s); if the server runs it later, "
            "nothing of it is posted",
            sent.otid, within, "never acknowledged" if sent.accepted is None else "no run to abort",
        )
    return False


async def ended(sent: Sent, within: float) -> None:
    """Until the input's turn has ended (a withdrawn one ends when the model call in flight returns)."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + within
    while not (sent.finished or sent.dropped or sent.accepted is False) and (left := ends - loop.time()) > 0:
        await sent.wait(left)
