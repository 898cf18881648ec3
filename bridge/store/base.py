"""The store interface the relay and the CLI use; a backend is chosen by the `DATABASE_URL` scheme."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol

from bridge.domain import (
    AgentFailure,
    AgentReply,
    Binding,
    RunnerChoice,
    StepRecord,
    Turn,
)
from bridge.domain import HistoryEntry as HistoryEntry  # the backends build these rows; a domain type
from bridge.store.turn_binding import Taken

if TYPE_CHECKING:  # slack_changes.py writes the error it is read from, and takes a Store
    from bridge.store.slack_changes import UnrunEnd

# A turn still owed an answer, or (`stopping`) a stop's end: written exactly so in every query, which lets SQLite
# use its partial indexes (schema v11). A running turn that is stopped is `stopping` until the process running it,
# or the one taking its binding over when that process died, has taken its working signs back.
UNFINISHED = "status IN ('received', 'running', 'stopping')"
# A journaled send nobody saw end: its run may go on at Letta (a step still `sending`, or failed: cut short by an
# error, a deadline or a stop). Written exactly so in `sends_left_going`, which lets SQLite use its partial index
# (schema v14).
UNSETTLED_STEP = "(state <> 'answered' OR failure IS NOT NULL)"
# An approval decision sent and not seen answered (`stopped`: a withdrawal, whose answer is never recorded).
UNSETTLED_DECISION = "(outcome IS NULL OR outcome = 'stopped')"
# Store.sends_left_going, each backend's two placeholders in place of {0} (a step's time) and {1} (a decision's).
SENDS_LEFT_GOING = (
    f"SELECT EXISTS (SELECT 1 FROM turn_steps WHERE {UNSETTLED_STEP} AND updated_at >= {{0}})"  # noqa: S608
    f" OR EXISTS (SELECT 1 FROM approvals WHERE {UNSETTLED_DECISION} AND sent_at >= {{1}})"
)
# Store.steps_left_going: a turn's step of one name (its placeholder $1) journaled since $2 and never seen end.
STEPS_LEFT_GOING = (
    "SELECT t.team_id, t.channel_id, t.otid, s.updated_at FROM turn_steps s JOIN turns t ON t.id = s.turn_id"
    " WHERE s.step = $1 AND (s.state <> 'answered' OR s.failure IS NOT NULL)"  # UNSETTLED_STEP
    " AND s.updated_at >= $2 ORDER BY s.updated_at"
)
# A stop: a turn that never started is done with; a running one is left `stopping` for its stop's end.
STOPS = "status = CASE status WHEN 'running' THEN 'stopping' ELSE 'stopped' END"
# Outbox rows of drafts: their source is LIVE + the reply's step key; posted as part 0 when the draft starts.
LIVE = "live:"
# Every ts recorded as posted in the thread of turn $1, by any of its turns (both backends).
THREAD_POSTS = (
    "SELECT p.ts FROM turns t0 JOIN turns t ON t.team_id=t0.team_id AND t.channel_id=t0.channel_id"
    " AND t.thread_ts=t0.thread_ts JOIN outbox o ON o.turn_id=t.id JOIN outbox_posts p ON p.outbox_id=o.id"
    " WHERE t0.id=$1"
)
ThreadKey = tuple[str, str, str]  # a Slack thread: team, channel, thread_ts


class StoreError(Exception):
    """The database cannot be opened or used; the message says which and why, in plain words."""


def database_trouble(exc: BaseException) -> bool:
    """Whether a failure is the database's (out of connections, gone, read-only, its disk full), not the code's:
    SQLite's and asyncpg's own errors (asyncpg is optional: told by its module), and StoreError."""
    if isinstance(exc, (StoreError, sqlite3.Error)):
        return True
    return type(exc).__module__.split(".", 1)[0] == "asyncpg"


def trouble_words(exc: BaseException, retried: bool = False) -> str:
    """A database failure (`database_trouble`) as a command says it: SQLite's "locked" names its usual cause, and
    tells the user to try again unless the bridge itself does (`retried`: a log line, not a command's answer)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        advice = "" if retried else "; try again once it lets go"
        return (
            f"the database is busy ({text}): another process holds a write on it, such as a sqlite3 shell left in "
            f"a transaction{advice}"
        )
    return text if isinstance(exc, StoreError) else f"the database failed: {text}"


@dataclass(frozen=True)
class PendingTurn:
    turn: Turn
    turn_id: int
    otid: str
    started: bool = False  # some process marked it running: it may have sent to Letta and posted
    stopped_by: str | None = None  # it was stopped while running: only its stop is left to finish (stop_end.py)


@dataclass(frozen=True)
class StepLeft:
    """A send an earlier process journaled and nobody saw end (Store.steps_left_going): Letta may still run it."""

    team_id: str
    channel_id: str
    otid: str
    since: datetime


class StoppedTurn(NamedTuple):
    """A turn a stop changed. `waiting`: it had not started, and is now `stopped`, ended by the stop itself (so
    counted by the process whose update changed it); otherwise it is `stopping`, ended by whoever runs it."""

    turn_id: int
    waiting: bool


@dataclass(frozen=True)
class OutboxItem:
    """A message the turn owes the thread (an agent's reply or a notice); `posted` holds the parts done."""

    id: int
    source: str
    agent_name: str | None
    text: str
    posted: frozenset[int]


def stop_word_key(team_id: str, channel_id: str, message_ts: str) -> str:
    """A stop word's row among the accepted events: keyed by its message, which its retries and its message
    twin (another event id) share; the spaces keep it apart from every Slack event id."""
    return f"stop {team_id} {channel_id} {message_ts}"


def stopper(error: str) -> str:
    """Who stopped a turn, from the `error` a stop writes ("stopped by U123")."""
    return error.removeprefix("stopped by ")


class Store(Protocol):
    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None: ...

    async def put_binding(self, binding: Binding) -> Binding | None:
        """Save the binding; returns the one it replaced."""
        ...

    async def touch_binding(self, binding: Binding) -> bool:
        """The binding saved again as it is (connected again, nothing changed): only its bound_at moves, so that
        every process reads its group's record again (letta/groups.py); no history entry, nothing else changes.
        False, and nothing done, where the channel's binding is no longer that one (changed or removed meanwhile,
        by another process): the caller saves it as asked."""
        ...

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None: ...

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]: ...

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None: ...

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]: ...

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        """Record the turn durably; None when its event or its message was already accepted."""
        ...

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None:
        """End the turn with `status`; a `stopping` turn ends as `stopped` (with its stopper), whatever status it
        is given, and an ended one is left as it is."""
        ...

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str, besides: str = "") -> bool:
        """Whether the bridge has taken up a turn in this thread (so replies there are follow-ups); `besides`: a
        turn other than that message's."""
        ...

    async def last_turn_in_thread(self, team_id: str, channel_id: str, thread_ts: str) -> int:
        """The id of the thread's newest accepted turn (0 for none): those up to it were accepted by then."""
        ...

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        """How many of the thread's turns before `turn_id` an agent answered (a step answered): one that never
        reached the agents (unbound, refused, Letta down, stopped first) gave them no thread context. Those that
        retention deleted count as one (`pruned_threads`): the agents had the context all the same."""
        ...

    async def take_turn(
        self, turn_id: int, binding: Binding | None = None, channel_id: str | None = None
    ) -> Taken | None:
        """Mark a received or running turn running, and return its words and files as they are now (an edit while
        it waited changed them: `slack_changes.edit_turn`, which changes a received turn only) and the binding it
        runs with: the one it started with, kept on it the first time it was taken (`binding`); None when it was
        stopped, withdrawn or ended meanwhile, or is no longer `channel_id`'s (its channel's id changed while it
        waited: the new id's worker runs it). One write: the words answered are the ones no edit can change."""
        ...

    async def stop_turns(
        self, team_id: str, channel_id: str, thread_ts: str | None, by: str
    ) -> list[StoppedTurn]:
        """Stop the thread's (the channel's, with thread_ts None) received and running turns, by the member `by`:
        a received one is `stopped`, a running one `stopping` (still unfinished, so that the binding's holder, or
        the process taking the binding over, finishes its stop). Neither is run again. The turns this update
        changed (another process's update of the same rows returns none of them), oldest first."""
        ...

    async def unrun_end(self, turn_id: int) -> UnrunEnd | None:
        """How a turn that was never taken to run ended (`stopped`, or withdrawn: why its message was taken back),
        else None (it waits, or ran: a taken turn has its binding, `turn_binding.py`)."""
        ...

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        """Who stopped the turn (`stopping` or `stopped`), or None while it is not stopped."""
        ...

    async def first_stop(self, key: str) -> bool:
        """Take up a stop event (a stop word by `stop_word_key`, Slack's Stop by its event id): False when a
        process (this one or another on the database) already did, for Slack's retry of the event or a mention's
        message twin. Marked seen as a turn's event is, so that a copy never stops again nor answers again."""
        ...

    async def unfinished_turns(self, team_id: str | None = None, channel_id: str | None = None) -> list[PendingTurn]:
        """Turns accepted but not finished (received, or running when the process stopped), oldest first;
        only the binding's when `team_id` and `channel_id` are given."""
        ...

    async def next_turn(
        self, team_id: str, channel_id: str, thread_ts: str | None = None, skip: Collection[int] = ()
    ) -> PendingTurn | None:
        """The binding's (the thread's) oldest unfinished turn not in `skip`: one indexed row, whatever the
        backlog."""
        ...

    async def waiting_threads(self, team_id: str, channel_id: str) -> list[str]:
        """The threads of the binding with unfinished turns, the one waiting longest first."""
        ...

    async def turns_ahead(
        self, team_id: str, channel_id: str, thread_ts: str, in_thread: bool, skip: Collection[int] = ()
    ) -> int:
        """How many unfinished turns come before the thread's newest unfinished one: in the whole binding, or
        in the thread alone (`in_thread`, where a binding's threads run at once). 0 when none of the thread's
        turns waits behind another. `skip`: turns set aside for the next start, which nothing waits behind."""
        ...

    async def count_unfinished(self, team_id: str | None = None, channel_id: str | None = None) -> int: ...

    async def get_step(self, turn_id: int, step: str) -> StepRecord | None: ...

    async def step_sending(self, turn_id: int, step: str) -> None: ...

    async def step_run(self, turn_id: int, step: str, run_id: str) -> None:
        """The Letta run the step's send reported (its first event): what a Stop ended by another process cancels."""
        ...

    async def sending_steps(self, turn_id: int) -> dict[str, str]:
        """The turn's steps journaled `sending` and never answered (sends that may still run on Letta), each with
        the run its send reported ('' none yet)."""
        ...

    async def sends_left_going(self, since: datetime) -> bool:
        """Whether any send journaled since `since` may still run on Letta, for all anyone saw: a step still
        `sending` or failed (cut short by an error, a deadline or a stop: Letta runs on), or an approval decision
        (a withdrawal too) sent and not settled. Read at start, before this process sends anything."""
        ...

    async def steps_left_going(self, step: str, since: datetime) -> list[StepLeft]:
        """The turns' steps named `step` journaled since `since` that nobody saw end, oldest first: a send that
        lists no run (a 0.11.x group send) is known to be going only from here. Read at start."""
        ...

    async def step_answered(
        self,
        turn_id: int,
        step: str,
        replies: list[AgentReply],
        failure: AgentFailure | None,
        seen: tuple[str, str, str, int] | None,
    ) -> None: ...

    async def outbox_add(self, turn_id: int, source: str, agent_name: str | None, text: str) -> int | None:
        """Owe the thread a message; returns its id. Adding the same source twice is a no-op (None)."""
        ...

    async def outbox_pending(self, turn_id: int) -> list[OutboxItem]: ...

    async def outbox_posted(self, outbox_id: int, part: int, ts: str, last: bool) -> None: ...

    async def live_started(self, turn_id: int, key: str, agent_name: str, ts: str) -> None:
        """Record the ts of a reply's draft (a message growing while the agent writes), before it grows."""
        ...

    async def live_ts(self, turn_id: int, key: str) -> str | None: ...

    async def live_unreplaced(self, turn_id: int) -> list[tuple[str, str]]:
        """(key, ts) of the turn's drafts that no posted part of the turn was written over, oldest first."""
        ...

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]: ...

    async def thread_posts(self, turn_id: int) -> set[str]:
        """The ts of every message recorded as posted in the turn's thread, by any of its turns: a post looked for
        after a crash is none of these (an agent may say the same words twice in a thread)."""
        ...

    async def thread_replies(self, team_id: str, channel_id: str, thread_ts: str) -> dict[str, tuple[str, str]]:
        """The agents' replies posted in a thread (outbox sources `reply:`, turn_flush.REPLY), by the ts of each
        reply's first message: (agent name, the reply as the agent wrote it)."""
        ...

    async def first_signature(self, signature: str, expires_at: float) -> bool:
        """Record a Slack request's signature until `expires_at` (epoch seconds, the end of its replay window);
        False when it was already recorded and has not expired: the request is a replay. Expired ones go."""
        ...

    async def record_signatures(self) -> None:
        """Write the signatures checked by `first_signature` and not yet written; called before a request's
        answer goes out, so an answered request's signature is refused after a restart too."""
        ...

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        """True the first time a notice of this kind is due for the channel, False after."""
        ...

    async def unseen(
        self, team_id: str, channel_id: str, agent_id: str, from_start: bool = False
    ) -> tuple[list[AgentReply], int]:
        """The replies of other agents past the agent's cursor, and the top sequence number. An agent without a
        cursor has seen everything (it joined the channel after them), or nothing with `from_start` (a thread's
        transcript, which starts empty)."""
        ...

    async def conversation(self, thread: ThreadKey, agent_id: str) -> str | None:
        """The Letta conversation holding this agent's side of the Slack thread, if one was made."""
        ...

    async def put_conversation(
        self, thread: ThreadKey, agent_id: str, conversation_id: str, replacing: str | None = None
    ) -> str:
        """Remember the thread's conversation for the agent; returns the one stored (the first writer wins).
        With `replacing`, a stored conversation that is gone on Letta gives way (unless another took its place)."""
        ...

    async def forget_conversation(self, thread: ThreadKey, agent_id: str, conversation_id: str) -> None:
        """The thread's next send to the agent goes to a new conversation (made then, so that its first send
        carries the thread so far); nothing changes when another conversation already took this one's place."""
        ...

    async def ping(self) -> None:
        """A trivial query; raises when the database cannot answer (GET /readyz)."""
        ...

    # Several processes on one database: a binding's turns are run by the process holding its lease.

    async def claim_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        """Take the binding's lease for `seconds` when it is free, expired or already `owner`'s."""
        ...

    async def renew_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        """Extend `owner`'s lease; False when it is no longer `owner`'s (it expired and another took it)."""
        ...

    async def release_binding(self, team_id: str, channel_id: str, owner: str) -> None: ...

    async def orphaned_bindings(self) -> list[tuple[str, str]]:
        """Bindings with unfinished turns and no live lease (their process stopped or died), oldest turn first."""
        ...

    def agent_lock(self, agent_ids: Sequence[str]) -> AbstractAsyncContextManager[set[str]]:
        """Held around each Letta send, so that no agent has two sends in flight across processes sharing the
        database (SQLite means one process, where the Letta client's own locks suffice). Yields the ids whose
        last send was another process's, which died (or froze) before it ended: Letta may still be running it."""
        ...

    def token_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """Held while a workspace's Slack tokens are renewed, so that two processes never spend one refresh token,
        on connections of its own: a send holding an agent lock may be waiting for the renewed token."""
        ...
