"""What Slack changed after the bridge stored it, one implementation for both backends (`$n` placeholders become
`?n` on SQLite):

- a message deleted, or edited, while its turn waits (`received`): the turn is withdrawn (`stopped`, never run),
  or takes the new words and keeps only the files the message still has (read as the turn is taken:
  `Store.take_turn`); a turn that started answers what it was asked;
- a channel whose id changed for good (`channel_id_changed`: a private channel shared with another organisation
  through Slack Connect, G... becoming C...; Slack asks apps to update what they stored under the old id). What the
  bridge keeps under the old id moves to the new one in one transaction: the binding and its history, the turns
  (so that a thread the bot answered still takes follow-ups), each thread's Letta conversations, what each agent
  has not yet seen, the notices given once, the feedback counts, the threads retention deleted answered turns of.
  A turn running meanwhile stays under the old id and ends there; what it wrote there follows once it has ended
  (`move_after_turn`, called by the relay, which keeps back the new id's turns that would run beside it until
  then).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any, Literal

from bridge.store.base import Store
from bridge.store.sqlite_connection import now_text

# Why a waiting turn was taken back: its message deleted, edited to address someone else, edited to mention neither
# the bot nor anyone else, edited down to nothing to answer, or edited in a thread to a stop word (`@bot stop` is
# never sent to the agents). The words say it in the turn's stored error and the log; the process showing its
# queue notice may be another one, which reads the reason back from the error (`how_unrun`).
TakenBack = Literal["deleted", "addressed", "unmentioned", "emptied", "stop"]
HOW_TAKEN_BACK: dict[TakenBack, str] = {
    "deleted": "deleted",
    "addressed": "edited to speak to someone else",
    "unmentioned": "edited so that it no longer mentions the bot",
    "emptied": "edited to leave nothing to answer",
    "stop": "edited to stop",
}
# Why an edit (or, "older", "same" or "past", a withdrawal) wrote nothing over the waiting turn: "same" is the edit
# the turn took, again (Slack sends one edit as message_changed and as the app_mention again, with one `edited.ts`);
# "past", the message's turn no longer waits (it runs, ended, or was withdrawn): no change needs remembering.
Unwritten = Literal["emptied", "older", "same", "past"]
# How a turn never taken to run ended.
UnrunEnd = Literal["stopped", "deleted", "addressed", "unmentioned", "emptied", "stop"]
_WITHDRAWN = "withdrawn: its message was "
_WAITING = "team_id=$1 AND channel_id=$2 AND message_ts=$3 AND status='received'"
_WITHDRAW = f"UPDATE turns SET status='stopped', error=$4, {{at}} WHERE {_WAITING} RETURNING id, thread_ts"  # noqa: S608
# The words, and the files when the edit said which remain ($5; NULL keeps them): `kept_files` of the stored ones;
# the edit's time as `edit_order` writes it ($6), so that an older edit delivered later changes nothing.
_EDIT = (
    f"UPDATE turns SET text=$4, files=COALESCE($5, files), edited_ts=$6, {{at}} WHERE {_WAITING}"  # noqa: S608
    " RETURNING id, thread_ts"
)
# The message's turn, waiting or not: a turn past waiting (running, ended, withdrawn) is "past", changed by no edit.
_FILES = "SELECT files, edited_ts, status FROM turns WHERE team_id=$1 AND channel_id=$2 AND message_ts=$3"

_NEW_SCOPE = "CAST($3 AS TEXT) || substr({t}.channel_id, length(CAST($2 AS TEXT)) + 1)"  # G1/ts -> C1/ts
_IN_SCOPE = "team_id=$1 AND (channel_id=$2 OR channel_id LIKE CAST($2 AS TEXT) || '/%')"  # the channel, its threads
_BINDING = (
    "UPDATE bindings SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2"
    " AND NOT EXISTS (SELECT 1 FROM bindings WHERE team_id=$1 AND channel_id=$3)"
)
_BOUND = "SELECT 1 FROM bindings WHERE team_id=$1 AND channel_id=$2"  # the binding `_BINDING` left: the new id had one


def _keyed(table: str, keys: str, scoped: bool = False) -> str:
    """Move a table's rows whose key the new id may already hold (a default target answered there before the
    event came): such a row stays under the old id rather than collide."""
    new = _NEW_SCOPE.format(t=table) if scoped else "$3"
    where = _IN_SCOPE if scoped else "team_id=$1 AND channel_id=$2"
    same = " AND ".join(f"x.{k}={table}.{k}" for k in keys.split())
    return (
        f"UPDATE {table} SET channel_id={new} WHERE {where} AND NOT EXISTS"  # noqa: S608 - constants only
        f" (SELECT 1 FROM {table} x WHERE x.team_id=$1 AND x.channel_id={new} AND {same})"
    )


_REST = (
    "UPDATE binding_history SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2",
    "UPDATE turns SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2 AND status NOT IN ('running', 'stopping')",
    _keyed("conversations", "thread_ts agent_id"),
    _keyed("transcript", "seq", scoped=True),
    _keyed("cursors", "agent_id", scoped=True),
    _keyed("notices", "kind"),
    _keyed("pruned_threads", "thread_ts"),
    _keyed("queue_notices", "thread_ts"),
    "UPDATE feedback SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2",
)
_LEFT_RUNNING = (  # the turns `_REST` leaves under the old id: those running through the move
    "SELECT DISTINCT thread_ts FROM turns WHERE team_id=$1 AND channel_id=$2 AND status IN ('running', 'stopping')"
)


def edit_order(edited_ts: str) -> str:
    """A Slack edit's time (its message's `edited.ts`, seconds.micros) as text that sorts as the time does, so that
    both backends compare it as text; "" when Slack gave none (such an edit is applied, as before it was kept)."""
    seconds, dot, fraction = edited_ts.partition(".")
    if not (seconds.isdigit() and fraction.isdigit() and dot) or len(seconds) > 12 or len(fraction) > 9:
        return ""
    return f"{seconds:0>12}.{fraction:0<9}"


def withdrawn_error(why: TakenBack) -> str:
    """A withdrawn turn's stored error, saying how its message was taken back."""
    return f"{_WITHDRAWN}{HOW_TAKEN_BACK[why]} before it ran"


def how_unrun(error: str) -> UnrunEnd:
    """How a turn stopped before it was ever taken ended, from its stored error: withdrawn (and why), else
    stopped. A withdrawal in other words (none is written now) reads as a deletion, once the only kind."""
    if not error.startswith(_WITHDRAWN):
        return "stopped"
    return next((why for why in HOW_TAKEN_BACK if error == withdrawn_error(why)), "deleted")


async def withdraw_turn(
    store: Store, team_id: str, channel_id: str, message_ts: str, why: TakenBack, edited_ts: str = ""
) -> tuple[int, str] | Unwritten | None:
    """A message deleted in Slack, or edited away from the bot (`why`) at `edited_ts` (an edit's time; "" for a
    deletion): its turn, while it waits, is `stopped` (its error `withdrawn_error(why)`) and never run. Its id and
    thread; "older" ("same"), changing nothing, when the turn already took an edit made after (at) `edited_ts`
    (read and written in one transaction: Slack delivers in no promised order); or None when no such turn waits
    (none, or it started: it runs on)."""
    order = edit_order(edited_ts)

    def unless_older(stored: Any) -> tuple[str] | Unwritten:
        return _seen(stored, order) or (withdrawn_error(why),)

    return await _read_then_write(store, (team_id, channel_id, message_ts), unless_older, _WITHDRAW)


async def edit_turn(
    store: Store,
    team_id: str,
    channel_id: str,
    message_ts: str,
    text: str,
    kept: Collection[str] | None = None,
    edited_ts: str = "",
) -> tuple[int, str] | Unwritten | None:
    """A message edited in Slack: its turn, while it waits, takes the new words, and keeps only those of its files
    whose ids are in `kept` (the files the message has now; None when the edit did not say, and they stay). The
    stored row is read and written in one transaction, so that a turn taken meanwhile is left as it was. Its id
    and thread; "emptied", changing nothing, when it would be left with no words and no files (to be taken back,
    `withdraw_turn`); "older" ("same"), changing nothing, when the turn already took an edit made after (at)
    `edited_ts` (the edit's time; Slack delivers in no promised order); or None when no such turn waits."""
    order = edit_order(edited_ts)

    def words(stored: Any) -> tuple[str, str | None, str] | Unwritten:
        change = _change(stored, text, kept, order)
        return change if isinstance(change, str) else (text, *change)

    return await _read_then_write(store, (team_id, channel_id, message_ts), words, _EDIT)


async def _read_then_write(
    store: Store, key: tuple[str, str, str], decide: Callable[[Any], tuple[str | None, ...] | Unwritten], query: str
) -> tuple[int, str] | Unwritten | None:
    """Read the waiting turn of `key` (its files and edit time; None when none waits) and write `query` with the
    arguments `decide` gives it, in one transaction, so that a turn taken or changed meanwhile is left as it was;
    `decide`'s reason instead writes nothing. The id and thread of the turn written, or None."""
    raw: Any = store
    if hasattr(raw, "_write"):  # SQLite: one write transaction on the shared connection
        async with raw._write() as db:
            args = _unless_past(await (await db.execute(_sqlite(_FILES), key)).fetchone(), decide)
            if isinstance(args, str):
                return args
            at = f"updated_at=${len(key) + len(args) + 1}"
            row = await (await db.execute(_sqlite(query.format(at=at)), (*key, *args, now_text()))).fetchone()
        return (int(row[0]), str(row[1])) if row else None
    held = [a.replace("\x00", "\ufffd") for a in key]  # PostgreSQL text cannot hold NUL (postgres_connection.clean)
    async with raw.pool.acquire() as conn, conn.transaction():
        args = _unless_past(await conn.fetchrow(_FILES + " FOR UPDATE", *held), decide)
        if isinstance(args, str):
            return args
        clean = (a.replace("\x00", "\ufffd") if isinstance(a, str) else a for a in args)
        found = await conn.fetchrow(query.format(at="updated_at=now()"), *held, *clean)
    return (int(found["id"]), str(found["thread_ts"])) if found is not None else None


def _unless_past(
    stored: Any, decide: Callable[[Any], tuple[str | None, ...] | Unwritten]
) -> tuple[str | None, ...] | Unwritten:
    """`decide` over the message's turn read as `stored`, unless it is past waiting ("past")."""
    return "past" if stored is not None and stored[2] != "received" else decide(stored)


def _change(
    stored: Any, text: str, kept: Collection[str] | None, order: str
) -> tuple[str | None, str] | Unwritten:
    """What an edit writes over the waiting turn read as `stored` (files, edited_ts; None when none waits): its
    files (None keeps them) and edit time, or why it writes nothing."""
    if stored is None:
        return None, order
    files = kept_files(stored[0], kept) if kept is not None else None
    if seen := _seen(stored, order):
        return seen
    if not text and _none(files if files is not None else stored[0]):
        return "emptied"
    return files, order or stored[1]


def _seen(stored: Any, order: str) -> Literal["older", "same"] | None:
    """Whether the waiting turn read as `stored` already took an edit made after ("older") or at ("same") the
    edit's time `order` (`edit_order`; "" when unknown, which is never seen)."""
    if stored is None or not order or order > stored[1]:
        return None
    return "same" if order == stored[1] else "older"


def _none(files: str | None) -> bool:
    """Whether `turns.files` holds no file."""
    return not json.loads(files or "[]")


def kept_files(stored: str, kept: Collection[str]) -> str:
    """`turns.files` (schema v10) with only the files whose ids are `kept`, in their order and as stored: an edit
    takes files out of a turn, never adds one (a file it names that the turn lacks stays out)."""
    return json.dumps([f for f in json.loads(stored or "[]") if isinstance(f, dict) and f.get("id") in kept])


async def move_channel(store: Store, team_id: str, old: str, new: str) -> bool:
    """Move the channel's records from `old` to `new`, with its binding if it has one (a channel answered by the
    default target has none, and its threads move all the same). True only when something moved: False when both
    ids have a binding (the new id's is kept, and the old one left as it was), and when nothing is stored under
    `old` (a channel the bridge never answered in, or Slack's event delivered again), unless a turn still runs
    under `old` (its thread's later turns wait for it there: True again)."""
    return await move_channel_running(store, team_id, old, new) is not None


async def move_channel_running(store: Store, team_id: str, old: str, new: str) -> frozenset[str] | None:
    """As `move_channel`; None when nothing moved (and no turn runs under `old`), else the threads of the turns
    left running under `old` (read in the same transaction: the relay keeps those threads' next turns back until
    they end)."""
    return await _move(store, (team_id, old, new), _BINDING)


async def move_after_turn(store: Store, team_id: str, old: str, new: str) -> None:
    """After `move_channel`, once the turn running under `old` has ended: what it wrote there after the move (its
    replies in the group's transcript, the agents' cursors, its conversations, its own row) follows the channel,
    so that the next agent's input has its replies and its thread takes follow-ups."""
    await _move(store, (team_id, old, new), None)


async def _move(store: Store, args: tuple[str, str, str], binding: str | None) -> frozenset[str] | None:
    """Run `_REST` in one transaction: after the `binding` query, unless it left a binding under the old id (the
    new id had one); always without the query. The threads still running under the old id, or None when nothing
    moved and none runs there."""
    raw: Any = store
    moved = 0
    if hasattr(raw, "_write"):  # SQLite: one write transaction on the shared connection
        async with raw._write() as db:
            if binding is not None and (moved := (await db.execute(_sqlite(binding), args)).rowcount) != 1:
                if await (await db.execute(_sqlite(_BOUND), args[:2])).fetchone() is not None:
                    return None
            for query in _REST:
                moved += (await db.execute(_sqlite(query), args)).rowcount
            running = [str(r[0]) for r in await (await db.execute(_sqlite(_LEFT_RUNNING), args[:2])).fetchall()]
    else:
        async with raw.pool.acquire() as conn, conn.transaction():
            if binding is not None and (moved := _count(await conn.execute(binding, *args))) != 1:
                if await conn.fetchrow(_BOUND, *args[:2]) is not None:
                    return None
            for query in _REST:
                moved += _count(await conn.execute(query, *args))
            running = [str(r[0]) for r in await conn.fetch(_LEFT_RUNNING, *args[:2])]
    return frozenset(running) if moved or running else None


def _count(status: str) -> int:
    """The rows a PostgreSQL command changed, from its status ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def _sqlite(query: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", query)
