"""The bridge's own words about an agent name it as its replies show it (SLACK_AGENTS' display_name)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.approval_rig import ASKER, open_rig
from tests.e2e.conftest import open_world
from tests.e2e.test_live_replies import agent_messages, wait_done
from tests.fakes.letta import FakeLetta

LOOKS = '{"alice": {"display_name": "Alice (research)"}, "bob": {"display_name": "Bob (ops)"}}'


def test_an_empty_reply_notice_names_the_agent_as_its_replies_do(tmp_path: Path) -> None:
    """alice's replies show under "Alice (research)"; when she answers nothing the thread is told
    "alice sent an empty reply.": a name the reader never saw in the thread."""
    with open_world("bridge", tmp_path, SLACK_AGENTS=LOOKS) as world:
        crew = world.bound_crew(("alice", "bob"))
        world.letta.set_reply(crew.agents["alice"], "  \n\t ")
        event, _ = world.bridge.mention("anyone?", crew.channel)
        wait_done(world, crew.channel, event["ts"])
        shown = agent_messages(world, crew.channel, event["ts"])
        names = [m.get("username") for m in shown]
        texts = [m["text"] for m in shown]
        assert "Bob (ops)" in names, (names, texts)
        notice = next(t for t in texts if "empty reply" in t)
        assert notice.startswith("Alice (research)"), texts


def test_a_refused_part_notice_names_the_agent_as_its_replies_do(tmp_path: Path) -> None:
    """A part Slack refused (msg_too_long) is replaced by "Slack refused a message of alice's reply", while the
    rest of that reply shows under "Alice (research)"."""
    with open_world("bridge", tmp_path, SLACK_AGENTS=LOOKS) as world:
        crew = world.bound_crew(("alice",))
        world.letta.set_reply(crew.agents["alice"], "first paragraph " * 250 + "\n\n" + "second paragraph " * 250)
        world.slack.fail_next("chat.postMessage", error="msg_too_long")
        event, _ = world.bridge.mention("long one", crew.channel)
        wait_done(world, crew.channel, event["ts"])
        texts = [m["text"] for m in agent_messages(world, crew.channel, event["ts"])]
        notice = next(t for t in texts if t.startswith("Slack refused"))
        assert "Alice (research)" in notice, texts


def test_the_status_line_names_the_agents_as_their_replies_do(tmp_path: Path) -> None:
    """The thread's status line said "alice and bob are thinking..." while the replies that followed came from
    "Alice (research)" and "Bob (ops)"."""
    with open_world("bridge", tmp_path, SLACK_AGENTS=LOOKS, SLACK_WORKING_AFTER_SECONDS="0.5") as world:
        crew = world.bound_crew(("alice", "bob"))
        world.letta.set_delay(crew.agents["alice"], 1.5)
        event, _ = world.bridge.mention("slow one", crew.channel)
        wait_done(world, crew.channel, event["ts"])
        statuses = [c.args.get("status") for c in world.slack.calls_to("assistant.threads.setStatus")
                    if c.args.get("thread_ts") == event["ts"] and c.args.get("status")]
        assert statuses == ["Alice (research) and Bob (ops) are thinking..."], statuses


def test_an_approval_card_names_the_agent_as_its_replies_do(tmp_path: Path) -> None:
    """The card was posted under "Finn (tools)" and said "*finn* wants to run", and so did the decided card."""
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        looks = '{"finn": {"display_name": "Finn (tools)"}}'
        with open_rig(tmp_path, letta, letta.base_url, letta.add_agent("finn"), SLACK_AGENTS=looks) as rig:
            rig.letta.ask_approval(rig.agent, ("shout", '{"message": "hi"}'))
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            card = rig.cards(root["ts"])[0]
            assert card.args["username"] == "Finn (tools)"
            assert "*Finn (tools)* wants to run" in json.dumps(card.args["blocks"]), card.args["blocks"]
            assert card.args["text"].startswith("Finn (tools) asks to run"), card.args["text"]
            rig.press(card, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: any("Approved by" in u for u in rig.updates(card)), 10)
            decided = [c.args for c in rig.slack.calls_to("chat.update") if c.args.get("ts") == card.response["ts"]]
            assert decided and all("Finn (tools)" in json.dumps(d) and "finn" not in json.dumps(d) for d in decided)
    finally:
        letta.stop()


def test_a_failure_letta_side_worded_names_the_agent_as_its_replies_do(tmp_path: Path) -> None:
    """Letta refusing alice's send was said as "Letta does not know alice …" under a thread of "Alice (research)"."""
    with open_world("bridge", tmp_path, SLACK_AGENTS=LOOKS) as world:
        crew = world.bound_crew(("alice", "bob"))
        alice = crew.agents["alice"]
        world.letta.fail_next("POST", rf"/v1/agents/{alice}/messages(/stream)?", 404, {"detail": "not found"})
        event, _ = world.bridge.mention("anyone?", crew.channel)
        wait_done(world, crew.channel, event["ts"])
        texts = [m["text"] for m in agent_messages(world, crew.channel, event["ts"]) if not m.get("username")]
        failure = next(t for t in texts if "Letta" in t)
        assert "Alice (research)" in failure and "alice" not in failure, texts
