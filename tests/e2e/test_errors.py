"""Every Letta failure reaches the thread in plain words, on both runners; nothing is retried blindly."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import World
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.e2e.test_mentions import letta_sends_to, thread_posts, wait_done
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack
from tests.quoting import said
from tests.reference import LETTA, load


def send_route(world: World, crew_group: str) -> str:
    """The path regex of the send the runner makes first."""
    return (
        rf"/v1/groups/{crew_group}/messages(/stream)?"
        if world.runner == "server"
        else r"/v1/agents/[^/]+/messages(/stream)?"
    )


def run_failing(
    world: World, status: int, body: object = None, raw: bytes | None = None, headers: dict[str, str] | None = None
) -> list[str]:
    crew = world.bound_crew(("alice",))
    world.letta.fail_next("POST", send_route(world, crew.group_id), status, body=body, raw=raw, headers=headers)
    event, _ = world.bridge.mention("hello?", crew.channel)
    wait_done(world, crew.channel, event["ts"])
    assert "warning" in world.slack.reactions(crew.channel, event["ts"])
    texts = [p.args["text"] for p in world.slack.posts(crew.channel, event["ts"])]
    assert all("Traceback" not in t for t in texts)
    assert len(letta_sends_to(world, [crew.group_id, *crew.agents.values()])) == 1, "a failed send was retried"
    return texts


def test_unknown_group_or_agent(world: World) -> None:
    # As captured: 0.11.7's group send to a group it does not know (its detail carries Letta's whole actor repr).
    unknown = load(LETTA / "0.11.7" / "error-group-send-unknown-wellformed.json")["response"]["body"]
    body = unknown if world.runner == "server" else {"detail": "Agent with ID agent-x not found"}
    [text] = run_failing(world, 404, body)
    # revDS: Letta's user and organization ids and its Python reprs are no words for a thread.
    assert "actor=" not in text and "organization_id" not in text and "access level" not in text, text
    # Said to people in Slack, who have no shell: how to connect the channel again there, and who may.
    assert "does not know" in text and "deleted" in text
    assert "A workspace admin or owner can connect this channel" in text and "`/letta connect`" in text
    assert "python -m bridge" not in text


def test_rejected_key(world: World) -> None:
    [text] = run_failing(world, 401, {"detail": "Unauthorized"})
    assert "rejected the bridge's API key" in text and "LETTA_API_KEY" in text


def test_letta_5xx(world: World) -> None:
    [text] = run_failing(world, 500, {"detail": "An internal server error occurred"})
    assert "HTTP 500" in text and "An internal server error occurred" in text


def test_letta_llm_error_body_of_0_16(world: World) -> None:
    body = {"error": {"type": "llm_error", "message": "An error occurred with the LLM request.", "detail": "x"}}
    [text] = run_failing(world, 500, body)
    assert "An error occurred with the LLM request." in text


def test_error_inside_a_200_answer(world: World) -> None:
    body = {"messages": [], "stop_reason": {"message_type": "stop_reason", "stop_reason": "llm_api_error"}}
    [text] = run_failing(world, 200, body)
    assert "failed" in text and "llm_api_error" in text


SSE = {"content-type": "text/event-stream; charset=utf-8"}
STREAM_ERRORS = {
    "0.11.7 group stream": b'data: {"error":"Stream failed (internal error occurred)"}\n\ndata: [DONE]\n\n',
    "0.16.8 agent stream": (
        b'data: {"message_type":"stop_reason","stop_reason":"llm_api_error"}\n\n'
        b'event: error\ndata: {"message_type":"error_message","run_id":"run-1","error_type":"llm_error",'
        b'"message":"An error occurred with the LLM request.","detail":"boom"}\n\ndata: [DONE]\n\n'
    ),
    "cut off": b'data: {"message_type":"ping","id":"ping-1"}\n\n',
}


@pytest.mark.parametrize("shape", list(STREAM_ERRORS))
def test_error_inside_a_200_stream(world: World, shape: str) -> None:
    if world.runner == "server" and shape == "cut off":
        pytest.skip("a group stream cut off is looked up in the members' histories first: its own test below")
    [text] = run_failing(world, 200, raw=STREAM_ERRORS[shape], headers=SSE)
    expected = {"cut off": "connection to the Letta server dropped"}.get(shape, "failed")
    assert expected in text, text


def test_an_error_status_with_an_sse_body(world: World) -> None:
    body = (b'data: {"message_type":"stop_reason","stop_reason":"error"}\n\nevent: error\n'
            b'data: {"error": "INTERNAL_SERVER_ERROR: upstream", "code": "INTERNAL_SERVER_ERROR"}\n\n')
    [text] = run_failing(world, 500, raw=body, headers=SSE)
    assert "HTTP 500" in text and "INTERNAL_SERVER_ERROR: upstream" in text


def test_malformed_answer(world: World) -> None:
    [text] = run_failing(world, 200, raw=b"<html>proxy error</html>")
    assert "could not read" in text


def test_no_agent_said_anything(world: World) -> None:
    crew = world.bound_crew(("alice", "bob"))
    for agent_id in crew.agents.values():
        world.letta.set_reply(agent_id, [])
    event, _ = world.bridge.mention("anything?", crew.channel)
    [post] = thread_posts(world, crew.channel, event["ts"], 1)
    assert post.args["text"] == "No agent had anything to say this time."


def test_one_agent_failing_loses_nothing_else(world: World) -> None:
    crew = world.bound_crew()
    if world.runner == "server":
        pytest.skip("on the server runner the group answers or fails as a whole (covered above)")
    world.letta.fail_next("POST", rf"/v1/agents/{crew.agents['bob']}/messages(/stream)?", 500, {"detail": "boom"})
    event, _ = world.bridge.mention("all of you", crew.channel)
    posts = thread_posts(world, crew.channel, event["ts"], 3)
    wait_done(world, crew.channel, event["ts"])
    assert posts[0].args["username"] == "alice" and posts[0].args["text"] == "alice says hi"
    assert "username" not in posts[1].args or posts[1].args.get("username") is None
    assert "bob" in posts[1].args["text"] and "HTTP 500" in posts[1].args["text"]
    assert posts[2].args["username"] == "carol"
    # carol was still shown alice's reply, and not bob's (he gave none).
    [carol] = [i for i in world.letta.inputs if i.agent_id == crew.agents["carol"]]
    assert said("alice", "alice says hi") in carol.text and '"agent": "bob"' not in carol.text


def test_missing_group_route_switches_the_channel_to_the_bridge_runner_once(world: World) -> None:
    crew = world.crew(("alice", "bob"))
    world.slack.add_channel(crew.channel, "switchy")
    world.connect(crew.channel, crew.group_id, runner="server")
    if world.runner == "server":  # a 0.11.7 fake has the route: make it answer like 0.16.8 would
        world.letta.fail_next(
            "POST",
            rf"/v1/groups/{crew.group_id}/messages(/stream)?",
            405,
            {"detail": "Method Not Allowed"},
            headers={"allow": "GET"},
            times=2,  # the stream route, then the plain one: both gone, as on 0.16.8
        )
    first, _ = world.bridge.mention("one", crew.channel)
    posts = thread_posts(world, crew.channel, first["ts"], 3)
    wait_done(world, crew.channel, first["ts"])
    assert "runs this channel's group" in posts[0].args["text"]
    assert [p.args.get("username") for p in posts[1:]] == ["alice", "bob"]
    second, _ = world.bridge.mention("two", crew.channel)
    posts = thread_posts(world, crew.channel, second["ts"], 2)
    wait_done(world, crew.channel, second["ts"])
    assert [p.args.get("username") for p in posts] == ["alice", "bob"], "the channel was told twice"
    group_sends = letta_sends_to(world, [crew.group_id])
    assert [s.status for s in group_sends] == [405, 405], "tried the stream route, then the plain one, then stopped"
    listing = run_cli(world.env, "channels", "list")
    line = next(line for line in listing.stdout.splitlines() if crew.channel in line)
    assert " bridge " in line


def test_a_404_that_is_no_group_not_found_also_means_no_route(world: World) -> None:
    if world.runner == "bridge":
        pytest.skip("the agent route exists everywhere")
    crew = world.crew(("alice",))
    world.connect(crew.channel, crew.group_id)
    world.letta.fail_next("POST", rf"/v1/groups/{crew.group_id}/messages(/stream)?", 404, {"detail": "Not Found"})
    event, _ = world.bridge.mention("hi", crew.channel)
    posts = thread_posts(world, crew.channel, event["ts"], 2)
    assert posts[1].args.get("username") == "alice"


@pytest.mark.parametrize("version", ["0.12.1", "0.16.4"])
def test_forced_server_runner_on_a_broken_server_explains_the_fix(version: str, tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version=version) as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice = letta.add_agent("alice")
        group = letta.add_group([alice])
        # `--runner server` is refused on these versions (test_runner_server_broken.py): a binding saved with it
        # before Letta was upgraded to one of them.
        assert run_cli(env, "channels", "connect", "C0BROKEN1", group).returncode == 0
        with sqlite3.connect(tmp_path / "b.db") as conn:
            conn.execute("UPDATE bindings SET runner='server' WHERE channel_id='C0BROKEN1'")
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("hi", "C0BROKEN1")
            slack.wait_for(lambda: len(slack.posts("C0BROKEN1", event["ts"])) == 1)
            text = slack.posts("C0BROKEN1", event["ts"])[0].args["text"]
            assert "HTTP 500" in text and "--runner bridge" in text
        finally:
            bridge.stop()


@pytest.mark.parametrize("version", ["0.11.7", "0.16.8"])
def test_letta_unreachable_and_past_the_deadline(version: str, tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version=version) as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", TURN_DEADLINE_SECONDS="1")
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 3)
        group = letta.add_group([alice])
        assert run_cli(env, "channels", "connect", "C0SLOW001", group).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("slow?", "C0SLOW001")
            slack.wait_for(lambda: len(slack.posts("C0SLOW001", event["ts"])) == 1, timeout=10)
            text = slack.posts("C0SLOW001", event["ts"])[0].args["text"]
            assert "did not finish within 1 second." in text
            letta.stop()
            event, _ = bridge.mention("anyone?", "C0SLOW001")
            slack.wait_for(lambda: len(slack.posts("C0SLOW001", event["ts"])) == 1, timeout=10)
            text = slack.posts("C0SLOW001", event["ts"])[0].args["text"]
            assert "couldn't reach the Letta server" in text and letta.base_url in text
        finally:
            bridge.stop()


def test_a_reply_whose_post_is_in_flight_at_the_deadline_is_posted_once(tmp_path: Path) -> None:
    """Slack has the reply, its answer is on the way back, and the deadline cancels the wait: the turn's last
    flush reads the thread before posting it again (before, the thread got the reply twice)."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", TURN_DEADLINE_SECONDS="1")
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 0.5)
        assert run_cli(env, "channels", "connect", "C0LATE001", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            slack.answer_delays["chat.postMessage"] = 1.5  # the reply lands at once, answered after the deadline
            event, _ = bridge.mention("in time?", "C0LATE001")
            slack.wait_for(lambda: len(slack.posts("C0LATE001", event["ts"])) == 2, timeout=15)
            slack.answer_delays.clear()
            time.sleep(2.0)  # whatever else the turn would post
            texts = [p.args["text"] for p in slack.posts("C0LATE001", event["ts"])]
            assert texts.count("alice says hi") == 1, texts
            assert "did not finish within 1 second." in texts[-1]
        finally:
            bridge.stop()


def test_a_run_past_the_deadline_is_cancelled_and_the_next_message_answered_once_it_ends(tmp_path: Path) -> None:
    """The deadline cancelled nothing at Letta: alice's run went on past the model call in flight (its further
    steps answering nobody), and the thread's follow-up, as the notice asks, waited behind all of it. A cancel
    ends the run when that model call returns (reference/letta README §16); the follow-up is then sent."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", TURN_DEADLINE_SECONDS="2")
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 3)
        assert run_cli(env, "channels", "connect", "C0DEADL01", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("slow?", "C0DEADL01")
            slack.wait_for(lambda: len(slack.posts("C0DEADL01", event["ts"])) == 1, timeout=10)
            assert "did not finish within 2 seconds" in slack.posts("C0DEADL01", event["ts"])[0].args["text"]
            letta.set_delay(alice, 0)
            follow = mention_event("again", channel="C0DEADL01", thread_ts=event["ts"])
            assert bridge.post(event_body(follow)).status_code == 200
            slack.wait_for(lambda: len(slack.posts("C0DEADL01", event["ts"])) == 2, timeout=10)
            assert slack.posts("C0DEADL01", event["ts"])[1].args["text"] == "alice says hi"
            assert [(kind, target) for kind, target, runs in letta.cancels if runs] == [("agents", alice)]
        finally:
            bridge.stop()


def test_a_group_stream_cut_off_before_any_member_had_it_is_said_after_the_recovery_wait(tmp_path: Path) -> None:
    """0.11.x: a group send lists no run and each member stores the message only when its step ends, so a stream
    cut off is looked up in the members' histories for LETTA_RECOVERY_WAIT_SECONDS before the thread is told it
    dropped; nothing is sent again."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        alice = letta.add_agent("alice")
        group = letta.add_group([alice])
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_RECOVERY_WAIT_SECONDS="2")
        assert run_cli(env, "channels", "connect", "C0CUTOFF01", group).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.fail_next("POST", rf"/v1/groups/{group}/messages/stream", 200, raw=STREAM_ERRORS["cut off"],
                            headers=SSE)
            event, _ = bridge.mention("hello?", "C0CUTOFF01")
            slack.wait_for(lambda: len(slack.posts("C0CUTOFF01", event["ts"])) == 1, timeout=15)
            text = slack.posts("C0CUTOFF01", event["ts"])[0].args["text"]
            assert "connection to the Letta server dropped" in text, text
            assert len(letta.sends()) == 1, "a send cut off was sent again"
        finally:
            bridge.stop()
