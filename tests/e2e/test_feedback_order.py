"""bridge/slack/listeners/feedback.py: a person votes up then down on a reply; Letta keeps the last vote it is sent,
which must be the last one recorded (down). Found by a review (revBA): each press's task PATCHed Letta on its own,
so when the first PATCH was slower on Letta's side than the second, the earlier vote landed last."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.test_feedback import press, votes
from tests.e2e.test_sessions import ASKER, Rig, rig, wait_status  # noqa: F401 - the fixture
from tests.fakes import letta as fake_letta_module
from tests.fakes import letta_steps


def test_up_then_down_leaves_down_on_letta(rig: Rig, monkeypatch: Any) -> None:
    real_routes = letta_steps.routes

    def slow_first_routes(fake: Any) -> Any:
        [(pattern, [(method, handler)])] = real_routes(fake)

        async def slow(request: Any, rec: Any, v: str, p: dict[str, str]) -> Any:
            body = await request.json()
            if body.get("feedback") == "positive":
                await asyncio.sleep(1.0)  # Letta slow on the first PATCH (a busy DB, a cold worker)
            return await handler(request, rec, v, p)

        return [(pattern, [(method, slow)])]

    monkeypatch.setattr(fake_letta_module.letta_steps, "routes", slow_first_routes)
    root = rig.mention("how do we roll back?")
    wait_status(rig, root["ts"], "done")
    alice = rig.agent_posts(root["ts"])[0]
    press(rig, alice, "up", ASKER)
    rig.slack.wait_for(lambda: votes(rig) == [("alice", ASKER, "up")])
    time.sleep(0.2)
    press(rig, alice, "down", ASKER)  # a change of mind: the bridge records "down" as the vote
    rig.slack.wait_for(lambda: votes(rig) == [("alice", ASKER, "down")])
    rig.slack.wait_for(lambda: len(rig.letta.step_feedback) == 2, 10)
    # Letta keeps the last PATCH it applied: it must be the person's last vote.
    assert [f for _, f in rig.letta.step_feedback][-1] == "negative", rig.letta.step_feedback
