"""bench/fanout_phases.py: each turn's phases from Letta's spans and Slack's posts, the burst's own only."""

from __future__ import annotations

from bench.fakes_proc import Crew, Post
from bench.fanout_phases import phases


def crew(n: int) -> Crew:
    return Crew(f"C{n}", f"group-{n}", ((f"a{n}", "alice"), (f"b{n}", "bob")))


def test_each_turn_s_reach_gap_last_post_and_wall_are_measured_from_the_burst() -> None:
    began = 100.0
    spans = [
        ("a1", "hi", 100.1, 102.1), ("b1", "hi", 102.2, 104.2),  # reached at 0.1, gap 0.1
        ("a2", "hi", 100.5, 102.5), ("b2", "hi", 102.9, 104.9),  # reached at 0.5, gap 0.4
        ("a9", "earlier", 90.0, 92.0),  # another burst's
    ]
    posts = [
        Post("C1", "1.1", "alice", 102.15), Post("C1", "1.1", "bob", 104.25),
        Post("C2", "1.2", "alice", 102.6), Post("C2", "1.2", "bob", 105.1),
        Post("C2", "0.9", "bob", 95.0),  # before the burst
    ]
    got = phases(began, spans, posts, [crew(1), crew(2)])
    assert got["reach"] == (0.3, 0.5)
    assert got["gap"] == (0.25, 0.4)
    assert got["last_post"] == (0.125, 0.2)
    assert got["wall"] == (4.675, 5.1)


def test_a_turn_letta_or_slack_did_not_see_whole_is_left_out() -> None:
    spans = [("a1", "hi", 100.1, 102.1), ("b1", "hi", 102.2, None)]  # bob still answering
    posts = [Post("C1", "1.1", "alice", 102.15)]
    assert phases(100.0, spans, posts, [crew(1)]) == {}
