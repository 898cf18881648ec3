"""A Stop while Letta is slow to answer the cancel call (the stop waits up to CANCEL_DEADLINE for it before it
cancels the turn's task): README "nothing more is posted" and "the next agents are not asked"; docs/sessions.md
"The turn stops in the bridge at once". Found by review revDQ: a long reply's later parts were still posted, and
the next agent was asked after an agent that said nothing."""

from __future__ import annotations

import time

from tests.e2e.test_sessions import ASKER, Rig, rig, wait_status  # noqa: F401  (the fixture)


def test_a_stop_while_a_long_reply_posts_posts_none_of_its_later_parts(rig: Rig) -> None:  # noqa: F811
    warm = rig.mention("hello")  # the channel is known postable: the next agent is asked while a reply posts
    wait_status(rig, warm["ts"], "done")
    paragraphs = [f"part {n}: " + ("word " * 650) for n in range(6)]  # ~3,300 characters each: 6 messages
    rig.letta.set_reply(rig.agents["alice"], "\n\n".join(paragraphs))
    rig.letta.set_delay(rig.agents["bob"], 30.0)
    rig.letta.hang_next("POST", r".*/cancel$", times=5)  # Letta slow to answer the cancel call
    rig.slack.answer_delays["chat.postMessage"] = 1.0
    root = rig.mention("a long answer please")
    rig.slack.wait_for(lambda: len(rig.agent_posts(root["ts"])) >= 1, timeout=15)
    rig.letta.wait_for(lambda: rig.asked("bob") == 2, timeout=10)  # bob's send in flight
    rig.session_stopped(root["ts"], ASKER)
    at_stop = len(rig.agent_posts(root["ts"]))
    wait_status(rig, root["ts"], "stopped", timeout=30)
    posted = len(rig.agent_posts(root["ts"]))
    # At most the post already in flight when Stop was pressed lands; none is begun after it.
    assert posted <= at_stop + 1, f"{posted - at_stop} of alice's parts were posted after Stop was pressed"


def test_a_stop_while_a_silent_agent_works_asks_no_next_agent(rig: Rig) -> None:  # noqa: F811
    rig.letta.set_reply(rig.agents["alice"], [])  # alice answers with no message
    rig.letta.set_delay(rig.agents["alice"], 2.0)
    rig.letta.hang_next("POST", r".*/cancel$", times=5)  # Letta slow to answer the cancel call
    root = rig.mention("a question")
    rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=10)
    rig.session_stopped(root["ts"], ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in ("stopping", "stopped"), timeout=5)
    wait_status(rig, root["ts"], "stopped", timeout=30)
    time.sleep(1.0)
    assert (rig.asked("bob"), rig.asked("carol")) == (0, 0), "an agent was asked after Stop was pressed"
