"""What Slack's trouble does to a turn (revQ): an internal_error or fatal_error in an HTTP 200 answer ("it's
possible some aspect of the operation succeeded") is checked and tried again as a 5xx is, for a post and for a
draft's last edit; a draft Slack will not edit is deleted before its reply is posted anew (not shown twice); a
wait Slack's rate limit asks for does not count against TURN_DEADLINE_SECONDS; a turn past its deadline is
logged as a warning; a part Slack refused ends the turn partial, with a warning reaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CH = "C0REVQ0001"


@contextmanager
def rig(
    tmp: Path, names: tuple[str, ...] = ("alice",), **settings: str
) -> Iterator[tuple[FakeSlack, FakeLetta, BridgeProcess, list[str]]]:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.add_user("U0123ABCD", "maria", display_name="maria")
        slack.add_channel(CH, "revq")
        ids = [letta.add_agent(n) for n in names]
        env = base_env(slack.api_url, letta.base_url, tmp / "b.db", **settings)
        assert run_cli(env, "channels", "connect", CH, *ids).returncode == 0
        bridge = BridgeProcess(env).start(tmp / "bridge.log")
        try:
            yield slack, letta, bridge, ids
        finally:
            bridge.stop()


def ask(
    slack: FakeSlack, bridge: BridgeProcess, text: str = "hello", settle: float = 1.0
) -> tuple[set[str], list[str]]:
    event, _ = bridge.mention(text, CH)
    slack.remember_event(event)
    ts = event["ts"]
    slack.wait_for(lambda: bool({"white_check_mark", "warning"} & slack.reactions(CH, ts)), 30)
    time.sleep(settle)
    return slack.reactions(CH, ts), [slack.shown(CH, m["ts"]) for m in slack.messages(CH, ts) if m["ts"] != ts]


@pytest.mark.parametrize("error", ["internal_error", "fatal_error"])
def test_slacks_internal_error_in_a_200_answer_is_tried_again_not_the_turn_lost(tmp_path: Path, error: str) -> None:
    with rig(tmp_path, ("alice", "bob")) as (slack, _letta, bridge, _):
        slack.fail_next("chat.postMessage", error, status=200)
        reactions, texts = ask(slack, bridge)
        assert texts == ["alice says hi", "bob says hi"], (reactions, texts)


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "edit_window_closed"])
def test_a_draft_slack_will_not_edit_is_not_left_beside_its_reply(tmp_path: Path, error: str) -> None:
    with rig(tmp_path, LETTA_STREAM_TOKENS="true") as (slack, letta, bridge, [alice]):
        letta.token_delay = 0.05
        reply = " ".join(f"w{i}" for i in range(60))
        letta.set_reply(alice, reply)
        slack.fail_next("chat.update", error, status=200)
        _, texts = ask(slack, bridge)
        assert texts.count(reply) == 1, texts


def test_a_slack_rate_limit_past_the_deadline_does_not_end_the_turn(tmp_path: Path) -> None:
    with rig(tmp_path, ("alice", "bob"), TURN_DEADLINE_SECONDS="4") as (slack, letta, bridge, _):
        slack.fail_next("chat.postMessage", "ratelimited", headers={"retry-after": "8"})
        _, texts = ask(slack, bridge, settle=9)
        assert len(letta.sends()) == 2, "bob never asked"
        assert not any("check the Letta server" in t for t in texts), texts


def test_a_turn_past_its_deadline_is_a_warning_in_the_log(tmp_path: Path) -> None:
    with rig(tmp_path, TURN_DEADLINE_SECONDS="2") as (slack, letta, bridge, [alice]):
        letta.set_delay(alice, 4)
        assert ask(slack, bridge)[0] == {"warning"}
    warned = [line for line in bridge.logs().splitlines() if " WARNING " in line or " ERROR " in line]
    assert any("deadline" in line or "did not finish" in line for line in warned), warned


def test_a_part_slack_refused_ends_the_turn_partial(tmp_path: Path) -> None:
    with rig(tmp_path) as (slack, _letta, bridge, _):
        slack.fail_next("chat.postMessage", "msg_too_long")
        reactions, texts = ask(slack, bridge)
        assert "so that part is missing here" in texts[0]
        assert reactions == {"warning"}, reactions


def test_a_rate_limited_reaction_swap_at_the_end_of_a_turn_does_not_crash_it(tmp_path: Path) -> None:
    """revS: the turn's clock outlived its deadline's block, and a Slack rate limit after it (the ending reaction
    swap, a stop's note, the next turn's first calls) moved on a finished Timeout: RuntimeError, the turn run again."""
    with rig(tmp_path) as (slack, _letta, bridge, _):
        slack.fail_next("reactions.remove", "ratelimited", headers={"retry-after": "1"})
        event, _ = bridge.mention("hello", CH)
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CH, event["ts"]), 30)
        time.sleep(1)
        assert "turn worker failed" not in bridge.logs()


def test_a_rate_limited_post_after_a_stop_does_not_crash_the_turn(tmp_path: Path) -> None:
    with rig(tmp_path) as (slack, letta, bridge, [alice]):
        letta.set_delay(alice, 6)
        event, _ = bridge.mention("hello", CH)
        letta.wait_for(lambda: any(i.agent_id == alice for i in letta.inputs), 10)
        slack.fail_next("chat.postMessage", "ratelimited", headers={"retry-after": "1"}, times=3)
        bridge.mention("stop", CH, thread_ts=event["ts"])
        slack.wait_for(lambda: any("Stopped" in str(p.args.get("text")) for p in slack.posts(CH, event["ts"])), 15)
        assert "turn worker failed" not in bridge.logs()


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_too_long"])
def test_a_draft_refused_for_what_its_reply_holds_is_kept(tmp_path: Path, error: str) -> None:
    """revS: a draft whose last edit Slack refused for what the reply holds was deleted, and the reply posted anew
    was refused the same way: the words everyone had watched stream in were gone from the thread."""
    with rig(tmp_path, LETTA_STREAM_TOKENS="true") as (slack, letta, bridge, [alice]):
        letta.token_delay = 0.05
        reply = " ".join(f"w{i}" for i in range(60))
        letta.set_reply(alice, reply)
        slack.fail_next("chat.update", error)
        slack.fail_next("chat.postMessage", error)
        _, texts = ask(slack, bridge)
        assert any(reply in t for t in texts), texts


@pytest.mark.parametrize("status", [200, 500])
def test_the_ending_reaction_slack_had_trouble_with_is_made_again(tmp_path: Path, status: int) -> None:
    """revQ: a reactions.add for the ending ✅ that met Slack's trouble was not made again: the mention showed no
    sign at all of how its turn ended (its 👀, where there was one, already taken back)."""
    with rig(tmp_path) as (slack, letta, bridge, [alice]):
        letta.set_delay(alice, 2.0)
        event, _ = bridge.mention("hello", CH)
        slack.wait_for(lambda: "eyes" in slack.reactions(CH, event["ts"]), 15)
        slack.fail_next("reactions.add", "internal_error", status=status)  # the ending one
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CH, event["ts"]), 15)
        assert slack.reactions(CH, event["ts"]) == {"white_check_mark"}


def test_a_reaction_set_empty_is_turned_off_not_asked_of_slack(tmp_path: Path) -> None:
    """revV: `SLACK_WORKING_REACTION=` and `SLACK_DONE_REACTION=` (a deployment's way to turn each off): before,
    every turn called reactions.add and .remove with an empty name, and Slack's invalid_name used up the
    reactions' rate budget and logged a warning each time."""
    with rig(
        tmp_path, SLACK_WORKING_REACTION="", SLACK_DONE_REACTION="", SLACK_WORKING_AFTER_SECONDS="0"
    ) as (slack, letta, bridge, [alice]):
        letta.set_delay(alice, 0.5)
        event, _ = bridge.mention("hello", CH)
        slack.wait_for(lambda: any(m["ts"] != event["ts"] for m in slack.messages(CH, event["ts"])), 15)
        slack.wait_for(lambda: "turn ended" in bridge.logs(), 15)
        reactions = slack.calls_to("reactions.add") + slack.calls_to("reactions.remove")
        assert [c.args.get("name") for c in reactions] == [], reactions
        assert "invalid_name" not in bridge.logs()
