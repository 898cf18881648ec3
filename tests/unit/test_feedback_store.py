"""Feedback on agents' replies (schema v6), on both backends: once per person and reply, a change of mind
replaces the vote, counts per agent and channel."""

from __future__ import annotations

import asyncio

from bridge.domain import Turn
from bridge.store import Store
from bridge.store.feedback import AgentFeedback, Feedback, FeedbackStore
from tests.unit.test_store import run


async def _a_turn(store: Store) -> tuple[int, FeedbackStore]:
    turn_id = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1"), "otid-1")
    assert turn_id is not None
    return turn_id, FeedbackStore(store)


def test_a_vote_is_recorded_once_per_person_and_reply_and_a_change_replaces_it(database_url: str) -> None:
    async def body(store: Store) -> None:
        turn_id, feedback = await _a_turn(store)
        up = Feedback("T1", turn_id, "agent-a:0", "alice", "U1", "up")
        assert await feedback.record(up) == "new"
        assert await feedback.record(up) == "same"
        assert await feedback.counts("T1", "C1") == [AgentFeedback("alice", 1, 0)]
        assert await feedback.record(Feedback("T1", turn_id, "agent-a:0", "alice", "U1", "down")) == "changed"
        assert await feedback.record(Feedback("T1", turn_id, "agent-a:0", "alice", "U2", "up")) == "new"
        assert await feedback.record(Feedback("T1", turn_id, "agent-b:0", "bob", "U1", "down")) == "new"
        assert await feedback.counts("T1", "C1") == [AgentFeedback("alice", 1, 1), AgentFeedback("bob", 0, 1)]
        assert await feedback.counts("T1", "C2") == []
        # Another workspace's press, or a turn that does not exist, records nothing.
        assert await feedback.record(Feedback("T2", turn_id, "agent-a:0", "alice", "U3", "up")) == "unknown_turn"
        assert await feedback.record(Feedback("T1", turn_id + 99, "x:0", "alice", "U3", "up")) == "unknown_turn"

    run(database_url, body)


def test_up_then_down_at_once_is_one_new_vote_and_one_change(database_url: str) -> None:
    """Two presses handled at the same time: each read no vote before its write, and both were counted new."""

    async def body(store: Store) -> None:
        turn_id, feedback = await _a_turn(store)
        up = Feedback("T1", turn_id, "agent-a:0", "alice", "U1", "up")
        down = Feedback("T1", turn_id, "agent-a:0", "alice", "U1", "down")
        outcomes = await asyncio.gather(feedback.record(up), feedback.record(down))
        assert sorted(outcomes) == ["changed", "new"]

    run(database_url, body)
