"""Feedback buttons under each agent's final reply (issue 18): a press is recorded once per person and reply,
a change of mind (up, then down) replaces the vote, /metrics counts what was recorded, and Letta 0.16.8 is told
each recorded vote on the step that wrote the reply."""

# ruff: noqa: F811 - `rig` is test_sessions' fixture, taken by the tests as a parameter

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any

import httpx

from tests.e2e.test_sessions import ASKER, FORM, STRANGER, Rig, rig, wait_status  # noqa: F401 - the fixture
from tests.fakes.signing import action_body, next_ts
from tests.reference import SLACK, load


def feedback_buttons(post: Any) -> dict[str, Any]:
    blocks = post.args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    actions = [b for b in blocks if b.get("type") == "context_actions"]
    assert len(actions) == 1, blocks
    element: dict[str, Any] = actions[0]["elements"][0]
    assert element["type"] == "feedback_buttons"
    return element


def press(rig: Rig, post: Any, vote: str, user: str) -> None:
    element = feedback_buttons(post)
    button = element["positive_button" if vote == "up" else "negative_button"]
    payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_feedback_buttons.json"))
    payload.pop("_source", None)
    payload["response_url"] = rig.slack.response_url()
    payload["actions"][0].update(value=button["value"], text=button["text"], action_ts=next_ts())
    payload["user"].update(id=user)
    payload["channel"]["id"] = payload["container"]["channel_id"] = rig.channel
    payload["container"]["message_ts"] = post.response["ts"]
    assert rig.bridge.post(action_body(payload), content_type=FORM).status_code == 200


def votes(rig: Rig) -> list[tuple[str, str, str]]:
    with sqlite3.connect(rig.db) as db:
        rows = db.execute("SELECT agent_name, user_id, vote FROM feedback ORDER BY agent_name, user_id").fetchall()
    return [(str(a), str(u), str(v)) for a, u, v in rows]


def test_feedback_pressed_twice_is_recorded_once_and_a_change_of_mind_replaces_it(rig: Rig) -> None:
    root = rig.mention("how do we roll back?")
    wait_status(rig, root["ts"], "done")
    posts = rig.agent_posts(root["ts"])
    assert [p.args["username"] for p in posts] == ["alice", "bob", "carol"]
    for post in posts:  # every agent's final reply carries the buttons, its text in sections above them
        element = feedback_buttons(post)
        assert element["positive_button"]["text"]["text"] == "👍"
    alice, bob = posts[0], posts[1]
    press(rig, alice, "up", ASKER)
    press(rig, alice, "up", ASKER)  # the same press again: nothing more is recorded
    rig.slack.wait_for(lambda: votes(rig) == [("alice", ASKER, "up")])
    press(rig, bob, "down", STRANGER)
    rig.slack.wait_for(lambda: len(votes(rig)) == 2)
    press(rig, alice, "down", ASKER)  # a change of mind: the vote is updated, not added
    rig.slack.wait_for(lambda: ("alice", ASKER, "down") in votes(rig))
    assert votes(rig) == [("alice", ASKER, "down"), ("bob", STRANGER, "down")]
    page = httpx.get(f"{rig.bridge.url}/metrics", timeout=5).text
    assert 'bridge_feedback_total{agent="alice",change="new",vote="up"} 1.0' in page
    assert 'bridge_feedback_total{agent="alice",change="changed",vote="down"} 1.0' in page
    assert 'bridge_feedback_total{agent="bob",change="new",vote="down"} 1.0' in page
    assert rig.bridge.logs().count("outcome=same") == 1
    # Letta 0.16.8 is told each recorded vote (not the repeated one) on the step that wrote the reply.
    rig.slack.wait_for(lambda: len(rig.letta.step_feedback) == 3)
    (a1, first), (b, second), (a2, third) = rig.letta.step_feedback
    assert (first, second, third) == ("positive", "negative", "negative")
    assert a1 == a2 != b and {a1, b} <= rig.letta.step_ids()
