"""Pending tool approvals (schema v8), on both backends: recorded once per tool call, decided once whoever
clicks first (a double click, two people at once, a timeout racing a click), sent and settled once."""

from __future__ import annotations

import asyncio

from bridge.domain import Turn
from bridge.store import Store
from bridge.store.approvals import ApprovalStore, Asked
from tests.unit.test_store import run


def asked(turn_id: int, call: str, thread: str = "1.000001") -> Asked:
    return Asked(turn_id, "agent-a", call, "T1", "C1", thread, "agent-a", "alice", None, "message-1", "shout",
                 '{"message": "hi"}', "U1")


def test_a_request_is_recorded_once_and_decided_once(database_url: str) -> None:
    async def body(store: Store) -> None:
        turn_id = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1"), "otid-1")
        assert turn_id is not None
        approvals = ApprovalStore(store)
        first = await approvals.ask([asked(turn_id, "call_1"), asked(turn_id, "call_2")])
        again = await approvals.ask([asked(turn_id, "call_1"), asked(turn_id, "call_2")])  # a restart asks again
        assert [a.id for a in first] == [a.id for a in again] and len(first) == 2
        one = first[0]
        assert not one.decided and one.asked.tool_name == "shout" and one.asked.conversation_id is None
        await approvals.card_posted(one.id, "2.000001")
        await approvals.card_posted(one.id, "3.000001")  # the first card stays the card
        # Two people at once (and a double click): exactly one decision is recorded, the first one.
        wins = await asyncio.gather(
            approvals.decide(one.id, "U1", True, ""),
            approvals.decide(one.id, "U2", False, "no"),
            approvals.decide(one.id, "U1", True, ""),
        )
        assert sorted(wins) == [False, False, True]
        decided = await approvals.get(one.id)
        assert decided is not None and decided.card_ts == "2.000001" and decided.decided
        assert (decided.decided_by, decided.approve) in (("U1", True), ("U2", False))
        assert [a.asked.tool_call_id for a in await approvals.open_in("T1", "C1")] == ["call_1", "call_2"]
        await approvals.sending(one.id)
        await approvals.settle(one.id, "sent")
        await approvals.settle(one.id, "stale")  # settled once
        settled = await approvals.get(one.id)
        assert settled is not None and settled.outcome == "sent" and settled.sent_at is not None
        # A settled request can no longer be decided; an open one in another thread is not this thread's.
        await approvals.settle(first[1].id, "stopped")
        assert not await approvals.decide(first[1].id, "U1", True, "")
        assert [a.asked.tool_call_id for a in await approvals.open_in("T1", "C1", "9.000001")] == []
        assert await approvals.get(one.id + 1000) is None

    run(database_url, body)
