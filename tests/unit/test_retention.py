"""store/retention.py and pruner.py, on both backends: finished turns older than FINISHED_TURNS_DAYS go with
everything they left; unfinished turns, open approvals, recent turns and a recent event's id stay. A queue notice's
row posted as long ago goes too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bridge.domain import AgentReply, Turn
from bridge.pruner import Pruner, Timing
from bridge.store import Store
from bridge.store.approvals import ApprovalStore, Asked
from bridge.store.attachments import AttachmentStore
from bridge.store.queue_notices import NoticeRow, NoticeRows
from bridge.store.retention import Retention
from bridge.store.sql import Sql
from tests.unit.test_store import run

NOW = Timing(first_after=0.0, every=3600.0, pause=0.0)


def mention(n: int, thread: str | None = None) -> Turn:
    ts = f"{n}.000001"
    return Turn("T1", "C1", ts, thread or ts, "U1", f"question {n}", f"Ev{n}")


async def accepted(store: Store, n: int) -> int:
    turn_id = await store.accept_turn(mention(n), f"otid-{n}")
    assert turn_id is not None
    return turn_id


async def age(store: Store, turn_id: int, days: float, event: str | None = None) -> None:
    """Move a turn's times (and its event id's) `days` into the past, as the database's own clock wrote them."""
    sql = Sql(store)
    then = datetime.now(UTC) - timedelta(days=days)
    when: object = then.isoformat() if hasattr(store, "_transact") else then
    await sql.execute("UPDATE turns SET created_at=$1, updated_at=$1 WHERE id=$2", when, turn_id)
    if event is not None:
        await sql.execute("UPDATE seen_events SET at=$1 WHERE event_id=$2", when, event)


async def rows(store: Store, query: str, *args: object) -> int:
    return len(await Sql(store).fetch(query, *args))


def asked(turn_id: int, call: str) -> Asked:
    return Asked(turn_id, "agent-a", call, "T1", "C1", "1.000001", "agent-a", "alice", None, "m-1", "shout", "{}", "U1")


def test_an_old_finished_turn_goes_with_what_it_left_and_nothing_else_does(database_url: str) -> None:
    async def body(store: Store) -> None:
        old = await accepted(store, 1)
        waiting = await accepted(store, 2)  # old, never finished (its binding's worker never came back)
        recent = await accepted(store, 3)
        await store.step_answered(old, "agent-a", [AgentReply("alice", "an answer", "agent-a")], None, None)
        box = await store.outbox_add(old, "reply:agent-a:0", "alice", "an answer")
        assert box is not None
        await store.outbox_posted(box, 0, "1.000002", last=True)
        await AttachmentStore(store).keep(old, "files")
        approvals = ApprovalStore(store)
        settled, still_open = await approvals.ask([asked(old, "call-1"), asked(old, "call-2")])
        await approvals.settle(settled.id, "sent")
        await store.finish_turn(old, "done")
        await store.finish_turn(recent, "done")
        await age(store, old, 100, "Ev1")
        await age(store, waiting, 100, "Ev2")
        notices = NoticeRows(store)
        await notices.put(NoticeRow(("T1", "C1", "8.000001"), "9.000001", "channel", 2))
        await notices.put(NoticeRow(("T1", "C1", "7.000001"), "9.000002", "channel", 1))
        await Sql(store).execute("UPDATE queue_notices SET posted_at=posted_at - $1 WHERE ts='9.000001'", 100 * 86400.0)

        result = await Pruner(store, 90, NOW).run_once()

        assert (result.turns, result.events) == (1, 2)
        assert await rows(store, "SELECT id FROM turns ORDER BY id") == 2
        assert [t.turn_id for t in await store.unfinished_turns()] == [waiting]
        assert await store.get_step(old, "agent-a") is None
        assert await store.posts_of(old) == [] and await store.outbox_pending(old) == []
        assert await rows(store, "SELECT outbox_id FROM outbox_posts") == 0
        assert await AttachmentStore(store).kept(old) is None
        assert await approvals.get(settled.id) is None
        assert await approvals.get(still_open.id) is not None  # an agent may still wait for it on Letta
        assert [row.ts for row in await notices.all()] == ["9.000002"]  # a queue notice a crash left, long ago, went
        # The recent turn's event still keeps Slack's retry out; the old ones' ids went.
        assert await store.accept_turn(mention(3), "otid-3b") is None
        assert await rows(store, "SELECT event_id FROM seen_events") == 1
        assert recent in [int(r["id"]) for r in await Sql(store).fetch("SELECT id FROM turns")]

    run(database_url, body)


def test_the_walk_goes_window_by_window_and_stops_at_the_first_recent_turn(database_url: str) -> None:
    async def body(store: Store) -> None:
        ids = [await accepted(store, n) for n in range(1, 8)]
        for turn_id in ids:
            await store.finish_turn(turn_id, "done")
        for turn_id in ids[:5]:
            await age(store, turn_id, 40)
        retention = Retention(store)
        first = await retention.prune_turns(30, 0, limit=2)
        assert first == type(first)(2, ids[1])
        second = await retention.prune_turns(30, ids[1], limit=2)
        assert second.turns == 2 and second.after_id == ids[3]
        last = await retention.prune_turns(30, ids[3], limit=2)
        assert last.turns == 1 and last.after_id is None  # its window reached a turn created within the days
        left = [int(r["id"]) for r in await Sql(store).fetch("SELECT id FROM turns ORDER BY id")]
        assert left == ids[5:]
        # Within 60 days, nothing here is old.
        assert await retention.prune_turns(60, 0, limit=2) == type(first)(0, None)

    run(database_url, body)


def test_a_zero_retention_keeps_everything_and_starts_no_task(database_url: str) -> None:
    async def body(store: Store) -> None:
        turn_id = await accepted(store, 1)
        await store.finish_turn(turn_id, "done")
        await age(store, turn_id, 1000, "Ev1")
        pruner = Pruner(store, 0, NOW)
        pruner.start()
        await asyncio.sleep(0.05)
        await pruner.stop()
        assert await rows(store, "SELECT id FROM turns") == 1
        running = Pruner(store, 30, NOW)
        running.start()
        for _ in range(100):
            if not await rows(store, "SELECT id FROM turns"):
                break
            await asyncio.sleep(0.02)
        await running.stop()
        assert await rows(store, "SELECT id FROM turns") == 0

    run(database_url, body)
