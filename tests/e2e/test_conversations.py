"""A Slack thread is a conversation (issue 8): on a server with conversations each thread gets one per agent, two
threads of one channel run at the same time, and nothing of one thread reaches the other; without them (an older
server, or the channel's switch off) a channel's turns run one at a time. Overlap is read from the fake Letta's
own record of when each agent turn ran, never from wall-clock thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bridge.turn_input import THREAD_HISTORY_HEADER
from tests.e2e.conftest import backend_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.e2e.test_threads import reply_in_thread
from tests.fakes.letta import AgentInput, FakeLetta
from tests.fakes.slack import FakeSlack
from tests.quoting import read, said

OFF = "C0CONVOFF"  # a channel where the switch is off


@dataclass
class Rig:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    env: dict[str, str]

    def bind(self, channel: str, *names: str) -> dict[str, str]:
        agents = {name: self.letta.add_agent(name) for name in names}
        group = self.letta.add_group(list(agents.values()), description="crew")
        self.slack.add_channel(channel, f"chan-{channel.lower()}")
        done = run_cli(self.env, "channels", "connect", channel, group)
        assert done.returncode == 0, done.stderr
        return agents

    def mention(self, channel: str, text: str) -> str:
        event, response = self.bridge.mention(text, channel)
        self.slack.remember_event(event)  # in the channel's history, as Slack keeps it
        assert response.status_code == 200
        return str(event["ts"])

    def done(self, channel: str, *ts: str) -> None:
        self.slack.wait_for(lambda: all("white_check_mark" in self.slack.reactions(channel, t) for t in ts), 20)

    def inputs(self, agent_id: str) -> list[AgentInput]:
        return [i for i in self.letta.inputs if i.agent_id == agent_id]

    def answered_thread(self, channel: str) -> tuple[str, str, str]:
        """A channel bound to alice, a thread she answered: (alice's id, the thread's ts, its conversation)."""
        alice = self.bind(channel, "alice")["alice"]
        root = self.mention(channel, "start")
        self.done(channel, root)
        [conv_id] = [c for c, v in self.letta.conversations.items() if v["agent_id"] == alice]
        return alice, root, conv_id


def _rig(version: str, tmp: Path, **backend: str) -> Iterator[Rig]:
    slack, letta = FakeSlack(), FakeLetta(version=version)
    slack.start(), letta.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    settings = {"LETTA_CONVERSATIONS": "true", "LETTA_CONVERSATIONS_EXCEPT": OFF, **backend}
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", **settings)
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield Rig(slack, letta, bridge, env)
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(f"conversations-{request.param}")
    yield from _rig("0.16.8", tmp, **backend_env(request, str(request.param)))


def overlapped(a: AgentInput, b: AgentInput) -> bool:
    assert a.finished is not None and b.finished is not None
    return a.started < b.finished and b.started < a.finished


def test_two_threads_run_at_once_each_in_its_own_conversation_and_a_thread_keeps_its_own(rig: Rig) -> None:
    channel = "C0CONV0001"
    alice = rig.bind(channel, "alice")["alice"]
    rig.letta.set_delay(alice, 1.0)
    first, second = rig.mention(channel, "first thread"), rig.mention(channel, "second thread")
    rig.done(channel, first, second)
    a, b = rig.inputs(alice)
    assert overlapped(a, b)  # one agent, two threads, answered at the same time
    conversations = rig.letta.conversations
    assert a.conversation in conversations and b.conversation in conversations and a.conversation != b.conversation
    assert {c["agent_id"] for c in conversations.values()} == {alice}
    by_thread = {first: a.conversation if a.text.endswith("first thread") else b.conversation}
    follow = reply_in_thread(rig, channel, first, "and in the first thread again")
    rig.done(channel, follow["ts"])
    third = rig.inputs(alice)[-1]
    assert third.conversation == by_thread[first] and len(rig.letta.conversations) == 2
    assert rig.letta.overlaps == []  # never two sends in flight to one conversation
    sent_to = {r.path for r in rig.letta.sends()}
    assert sent_to == {f"/v1/conversations/{c}/messages" for c in conversations}  # never the agent's own route
    assert not [p for p in rig.slack.posts(channel) if p.args["text"].startswith("Queued")]
    for thread in (first, second):
        assert [p.args.get("username") for p in rig.slack.posts(channel, thread) if p.args.get("username")][:1] == [
            "alice"
        ]


def test_the_turns_of_one_thread_still_run_one_at_a_time_in_order(rig: Rig) -> None:
    channel = "C0CONV0006"
    alice = rig.bind(channel, "alice")["alice"]
    rig.letta.set_delay(alice, 0.5)
    root = rig.mention(channel, "first in the thread")
    rig.letta.wait_for(lambda: len(rig.inputs(alice)) == 1, 10)
    follow = reply_in_thread(rig, channel, root, "second in the thread")
    rig.done(channel, root, follow["ts"])
    a, b = rig.inputs(alice)
    assert not overlapped(a, b) and a.conversation == b.conversation is not None
    assert a.text.endswith("first in the thread") and b.text.endswith("second in the thread")
    queued = [p.args["text"] for p in rig.slack.posts(channel, root) if p.args["text"].startswith("Queued")]
    assert queued == ["Queued: I'll answer after the 1 earlier message in this thread."]


def test_each_thread_shows_an_agent_only_that_threads_replies(rig: Rig) -> None:
    channel = "C0CONV0002"
    agents = rig.bind(channel, "alice", "bob")
    rig.letta.set_reply(agents["alice"], lambda text: "answer A" if "thread A" in text else "answer B")
    first = rig.mention(channel, "thread A question")
    rig.done(channel, first)
    second = rig.mention(channel, "thread B question")
    rig.done(channel, second)
    bob_in_b = rig.inputs(agents["bob"])[-1]
    assert said("alice", "answer B") in bob_in_b.text and "answer A" not in bob_in_b.text
    follow = reply_in_thread(rig, channel, first, "more on A")
    rig.done(channel, follow["ts"])
    alice_again = rig.inputs(agents["alice"])[-1]
    assert said("bob", "bob says hi") in alice_again.text and "answer B" not in alice_again.text


def test_where_the_switch_is_off_the_channels_threads_share_the_agent_and_run_in_order(rig: Rig) -> None:
    alice = rig.bind(OFF, "alice")["alice"]
    rig.letta.set_delay(alice, 0.5)
    first, second = rig.mention(OFF, "one"), rig.mention(OFF, "two")
    rig.done(OFF, first, second)
    a, b = rig.inputs(alice)
    assert not overlapped(a, b) and a.conversation is None and b.conversation is None
    assert all(r.path == f"/v1/agents/{alice}/messages/stream" for r in rig.letta.sends() if alice in r.path)


def test_a_conversation_busy_with_another_run_is_waited_out_and_sent_once(rig: Rig) -> None:
    channel = "C0CONV0003"
    alice, root, conv_id = rig.answered_thread(channel)
    rig.letta.busy_next(conv_id, times=2)
    follow = reply_in_thread(rig, channel, root, "while it is busy")
    rig.done(channel, follow["ts"])
    statuses = [r.status for r in rig.letta.sends() if conv_id in r.path]
    assert statuses == [200, 409, 409, 200]
    assert len(rig.inputs(alice)) == 2  # the busy answers ran nothing, and the send was made once
    replies = [p for p in rig.slack.posts(channel, root) if p.args.get("username") == "alice"]
    assert len(replies) == 2


def test_a_stop_while_a_send_waiting_out_a_busy_conversation_is_asked_again_cancels_nothing(rig: Rig) -> None:
    """The same stop landing while a retry of the send is in flight (Letta slow to answer its 409): the send's keys
    were the turn's again for that attempt, and the stop cancelled the other client's run."""
    channel = "C0CONV0012"
    alice, root, conv_id = rig.answered_thread(channel)
    rig.letta.busy_next(conv_id, times=50, delay=1.5)
    follow = reply_in_thread(rig, channel, root, "while it is busy")
    asked = lambda: [r for r in rig.letta.requests if conv_id in r.path and r.method == "POST"]  # noqa: E731
    rig.letta.wait_for(lambda: len(asked()) >= 3, 20)
    reply_in_thread(rig, channel, root, "stop")
    rig.slack.wait_for(lambda: "white_check_mark" not in rig.slack.reactions(channel, follow["ts"])
                       and any("Stopped" in (p.args.get("text") or "") for p in rig.slack.posts(channel, root)), 15)
    assert [c for c in rig.letta.cancels if conv_id in c[1] or alice in c[1]] == [], rig.letta.cancels
    assert len(rig.inputs(alice)) == 1, "the stopped message was sent after all"


def test_a_stop_while_another_clients_run_keeps_the_conversation_busy_cancels_nothing_of_it(rig: Rig) -> None:
    """The bridge's send waited out a 409 (another client, the ADE say, running in the thread's conversation) and
    a person said stop: the bridge counted the conversation as its turn's and cancelled the other client's run."""
    channel = "C0CONV0011"
    alice, root, conv_id = rig.answered_thread(channel)
    rig.letta.busy_next(conv_id, times=50)
    follow = reply_in_thread(rig, channel, root, "while it is busy")
    rig.letta.wait_for(lambda: [r.status for r in rig.letta.sends() if conv_id in r.path][-1:] == [409], 10)
    reply_in_thread(rig, channel, root, "stop")
    rig.slack.wait_for(lambda: "white_check_mark" not in rig.slack.reactions(channel, follow["ts"])
                       and any("Stopped" in (p.args.get("text") or "") for p in rig.slack.posts(channel, root)), 15)
    assert [c for c in rig.letta.cancels if conv_id in c[1] or alice in c[1]] == [], rig.letta.cancels
    assert len(rig.inputs(alice)) == 1, "the stopped message was sent after all"
    with rig.letta._lock:
        rig.letta._rules.clear()  # the other client is done: the rig's later tests send freely


def test_a_conversation_deleted_on_letta_is_replaced_and_the_thread_goes_on(rig: Rig) -> None:
    channel = "C0CONV0007"
    alice, root, gone = rig.answered_thread(channel)
    assert httpx.delete(f"{rig.letta.base_url}/v1/conversations/{gone}").status_code == 200
    follow = reply_in_thread(rig, channel, root, "still there?")
    rig.done(channel, follow["ts"])
    [fresh] = [c for c, v in rig.letta.conversations.items() if v["agent_id"] == alice]
    again = reply_in_thread(rig, channel, root, "and now?")
    rig.done(channel, again["ts"])
    assert [i.conversation for i in rig.inputs(alice)] == [gone, fresh, fresh]
    # The new conversation starts empty: its first send carries the thread so far, once.
    first, second = rig.inputs(alice)[1:]
    assert history(first.text) == [("person", "maria", "@Letta Bridge start"), ("agent", "alice", "alice says hi")]
    assert history(second.text) == []
    assert [r.status for r in rig.letta.sends() if gone in r.path] == [200, 404]
    assert [p.args["text"] for p in rig.slack.posts(channel, root) if p.args.get("username")] == ["alice says hi"] * 3


def history(text: str) -> list[tuple[str, str, str]]:
    """The thread's earlier messages an agent was given with its first send in a new conversation."""
    return [e for header, entries in read(text).blocks if header == THREAD_HISTORY_HEADER for e in entries]


def test_a_thread_answered_before_conversations_were_on_gives_its_new_conversation_the_exchange(
    tmp_path: Path,
) -> None:
    for r in _rig("0.16.8", tmp_path):
        alice = r.bind(OFF, "alice")["alice"]
        root = r.mention(OFF, "what is the plan?")
        r.done(OFF, root)
        assert r.inputs(alice)[0].conversation is None
        r.bridge.env = dict(r.bridge.env, LETTA_CONVERSATIONS_EXCEPT="")
        r.bridge.restart()
        follow = reply_in_thread(r, OFF, root, "and then?")
        r.done(OFF, follow["ts"])
        again = reply_in_thread(r, OFF, root, "thanks")
        r.done(OFF, again["ts"])
        _, first, second = r.inputs(alice)
        assert first.conversation is not None and second.conversation == first.conversation
        asked, answered = history(first.text)
        assert asked == ("person", "maria", "@Letta Bridge what is the plan?")
        assert answered == ("agent", "alice", "alice says hi")
        assert read(first.text).own[-1].endswith("and then?")
        assert history(second.text) == []  # once


@pytest.mark.slow  # a kill or restart mid-turn: .ci/run's slow stage
def test_after_a_crash_the_send_is_found_in_the_threads_conversation_not_made_again(tmp_path: Path) -> None:
    for r in _rig("0.16.8", tmp_path):
        channel = "C0CONV0004"
        alice = r.bind(channel, "alice")["alice"]
        r.letta.set_delay(alice, 1.5)
        root = r.mention(channel, "before the crash")
        r.letta.wait_for(lambda: len(r.inputs(alice)) == 1, 10)
        r.bridge.kill()
        r.letta.wait_for(lambda: all(i.finished for i in r.letta.inputs), 10)
        r.bridge.restart()
        r.done(channel, root)
        [sent] = r.inputs(alice)
        assert sent.conversation is not None
        assert [p.args["text"] for p in r.slack.posts(channel, root) if p.args.get("username")] == ["alice says hi"]
        looked_up = [q for q in r.letta.requests if q.method == "GET" and q.path.endswith("/messages")]
        assert looked_up and all(q.path == f"/v1/conversations/{sent.conversation}/messages" for q in looked_up)


@pytest.mark.slow  # a kill mid-turn
def test_a_send_whose_conversation_was_deleted_while_the_bridge_was_down_is_not_made_again(tmp_path: Path) -> None:
    for r in _rig("0.16.8", tmp_path):
        channel = "C0CONV0008"
        alice = r.bind(channel, "alice")["alice"]
        r.letta.set_delay(alice, 1.5)
        root = r.mention(channel, "before the crash")
        r.letta.wait_for(lambda: len(r.inputs(alice)) == 1, 10)
        r.bridge.kill()
        r.letta.wait_for(lambda: all(i.finished for i in r.letta.inputs), 10)
        [gone] = r.letta.conversations
        assert httpx.delete(f"{r.letta.base_url}/v1/conversations/{gone}").status_code == 200
        r.bridge.restart()
        r.slack.wait_for(lambda: "warning" in r.slack.reactions(channel, root), 20)
        assert len(r.inputs(alice)) == 1  # what it answered went with its conversation: it is not asked again
        said_there = [p.args["text"] for p in r.slack.posts(channel, root)]
        assert any("deleted on Letta while the bridge was restarting" in t for t in said_there), said_there
        assert not any("unexpected error" in t for t in said_there), said_there
        follow = reply_in_thread(r, channel, root, "try again")
        r.done(channel, follow["ts"])
        assert len(r.inputs(alice)) == 2 and r.inputs(alice)[1].conversation not in (None, gone)


def test_a_server_without_conversations_runs_a_channels_threads_in_order(tmp_path: Path) -> None:
    for r in _rig("0.16.4", tmp_path):
        channel = "C0CONV0005"
        alice = r.bind(channel, "alice")["alice"]  # 0.16.4: the bridge runner
        r.letta.set_delay(alice, 0.5)
        first, second = r.mention(channel, "one"), r.mention(channel, "two")
        r.done(channel, first, second)
        a, b = r.inputs(alice)
        assert not overlapped(a, b) and a.conversation is None and b.conversation is None
        assert not [q for q in r.letta.requests if q.method == "POST" and q.path.startswith("/v1/conversations")]
        queued = [p for p in r.slack.posts(channel, second) if p.args["text"].startswith("Queued")]
        assert [p.args["text"] for p in queued] == ["Queued: I'll answer after the 1 earlier message in this channel."]


@pytest.mark.parametrize("inside", [False, True], ids=["new-thread", "human-thread"])
def test_an_agent_whose_first_send_in_a_thread_was_refused_later_gets_what_it_missed(
    tmp_path: Path, inside: bool
) -> None:
    """revBO: alice's first send into her new thread conversation was refused (a passing 503) while bob answered.
    Her empty conversation stayed the thread's, so she was asked the follow-up with bob's reply only: never the
    question, nor the human thread's earlier messages, which were in the refused send's own text."""
    for r in _rig("0.16.8", tmp_path):
        channel = "C0REVBO001"
        agents = r.bind(channel, "alice", "bob")
        alice = agents["alice"]
        r.letta.fail_next(
            "POST", r"/v1/conversations/[^/]+/messages(/stream)?", 503, body={"detail": "Service Unavailable"}, times=1
        )
        if inside:
            root = r.slack.add_message(channel, "ALERT: disk full on db-1", user="U0123ABCD")
            event, response = r.bridge.mention("what is the plan for the migration?", channel, thread_ts=root)
            r.slack.remember_event(event)
            assert response.status_code == 200
            asked = str(event["ts"])
        else:
            root = asked = r.mention(channel, "what is the plan for the migration?")
        going = {"eyes", "hourglass_flowing_sand"}  # a turn partly refused ends with a mark of its own
        r.slack.wait_for(lambda: r.slack.reactions(channel, asked) - going != set(), 20)
        assert [i.agent_id for i in r.letta.inputs] == [agents["bob"]]  # alice got nothing of the first turn
        follow = reply_in_thread(r, channel, root, "and then?")
        r.done(channel, follow["ts"])
        [second] = r.inputs(alice)
        assert second.text.count("what is the plan for the migration?") == 1, second.text
        assert second.text.count("bob says hi") == 1, second.text  # in the thread so far, not again as unseen
        assert second.text.count("ALERT: disk full on db-1") == (1 if inside else 0), second.text
        assert read(second.text).own[-1].endswith("and then?")
        assert second.conversation in r.letta.conversations and len(r.letta.conversations) == 2  # empty one gone
