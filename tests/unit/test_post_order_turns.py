"""A turn whose runner runs on while its replies are posted (bridge/post_order.py), meeting a stop: the posting
task cannot notice it while a slow post is under way, so the runner must, before it asks another agent; and a
card that waited for the replies before it is settled as stopped. Everything around the worker is a double; the
store is real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.domain import AgentReply, ApprovalRequest, Binding, Target, ToolCall, TurnInput
from bridge.slack.failures import SlackPostError
from bridge.store.approvals import Approval
from bridge.turn_asking import TurnAsking
from bridge.turns import Job, TurnWorker
from tests.unit.test_turn_end import Recorder, settings, worker_for

STOPS = pytest.mark.parametrize("delivered", [True, False], ids=["stop-delivered-here", "stop-recorded-elsewhere"])
Events = Callable[[TurnInput, Callable[[], Any]], AsyncIterator[AgentReply]]


async def run_turn(
    tmp_path: Path, delivered: bool, events: Events, post_fails: Exception | None = None,
    cancelled: list[Any] | None = None,
) -> tuple[str, TurnWorker, Job]:
    """Run a turn whose runner yields `events` (given its input and a function that stops the turn, delivered
    here or only recorded); Slack answers the first post, and Letta the cancel, only after 0.3 s: the post then
    fails with `post_fails`, if given; each cancel of the turn's Letta runs is put in `cancelled`."""
    s = settings()
    worker, store, job, poster = await worker_for(tmp_path, s)
    await store.take_turn(job.turn_id)
    slack, letta_cancel = asyncio.Event(), asyncio.Event()
    stopping: list[asyncio.Task[bool]] = []

    async def post(*_: Any, **__: Any) -> str:
        await slack.wait()
        if post_fails is not None:
            raise post_fails
        return "9.000001"

    async def cancel_letta(running: Any) -> list[str]:
        if cancelled is not None:
            cancelled.append(set(running.sending))
        await letta_cancel.wait()
        return []

    async def stop() -> None:
        if delivered:
            stopping.append(asyncio.create_task(worker.stops.stop(job.turn_id, "U1")))
            await asyncio.sleep(0)
        else:
            await store.stop_turns("T1", "C1", "1.000001", "U1")

    poster.post = post  # type: ignore[method-assign]
    poster.known_postable = lambda _channel: True  # type: ignore[attr-defined]
    worker.stops.cancel_letta = cancel_letta  # type: ignore[method-assign]
    chooser = SimpleNamespace(appserver=None, bridge=None, server=None)
    asking = TurnAsking(
        s, store, chooser, poster, None, threads=None, inputs=None, desk=worker.desk,  # type: ignore[arg-type]
        stops=worker.stops, ack_first=worker.ack_first, owe=worker._owe, flush=worker._flush, journaled={},
    )

    class Runner:
        name = "bridge"

        def run(self, _target: Any, turn_input: TurnInput, *_: Any) -> AsyncIterator[AgentReply]:
            return events(turn_input, stop)

    async def converse(_job: Any, binding: Any, drafts: Any, running: Any, approvals: Any) -> int:
        turn_input = TurnInput("hi", job.otid, None, approvals=approvals)
        return await asking.relay_events(job, binding, Runner(), turn_input, drafts, running)  # type: ignore[arg-type]

    async def slack_and_letta_answer() -> None:
        await asyncio.sleep(0.3)
        slack.set()
        letta_cancel.set()

    worker._converse = converse  # type: ignore[method-assign]
    drafts = SimpleNamespace(
        abandon=lambda *_, **__: asyncio.sleep(0, False),
        showed_tasks=lambda _k: False,
        replace=lambda *_: asyncio.sleep(0),
    )
    target = Target("group", (), "group-1", description="the crew")
    answering = asyncio.create_task(slack_and_letta_answer())
    try:
        async with worker.stops.track(job.turn_id, "T1", "C1", "1.000001") as running:
            running.target = target
            binding = Binding("T1", "C1", target)
            status = await worker._run_shown(job, binding, drafts, running, Recorder())  # type: ignore[arg-type]
    except BaseException:
        await store.close()  # the caller, given no worker, cannot
        raise
    finally:
        await asyncio.gather(answering, *stopping)
    return status, worker, job


def reply(agent: str) -> AgentReply:
    return AgentReply(agent, f"hello from {agent}", f"agent-{agent}", f"agent-{agent}", 0)


@STOPS
def test_a_stop_while_a_reply_is_posted_asks_no_agent_more(tmp_path: Path, delivered: bool) -> None:
    """Alice's reply is being posted (Slack is slow) while bob answers; a stop lands as he does: delivered here
    (TurnStops.stop: `stopped_by` set, then Letta's cancel round trip before the turn's task is cancelled), or
    only recorded (a channel-wide stop still cancelling an earlier turn's runs, another process, a workspace kit
    replaced). Before, the flush after each reply checked for a stop before the runner went on to the next agent;
    the runner now went straight on and carol was asked after the stop."""
    asked: list[str] = []

    async def events(_input: TurnInput, stop: Callable[[], Any]) -> AsyncIterator[AgentReply]:
        asked.append("alice")
        yield reply("alice")
        asked.append("bob")
        await stop()
        await asyncio.sleep(0.05)  # bob's model call ends as the stop lands
        yield reply("bob")
        asked.append("carol")
        yield reply("carol")

    async def main() -> str:
        status, worker, _job = await run_turn(tmp_path, delivered, events)
        await worker.store.close()
        return status

    assert asyncio.run(main()) == "stopped"
    assert asked == ["alice", "bob"], "an agent was asked after the turn was stopped"


@STOPS
def test_a_card_waiting_for_the_replies_before_it_is_settled_when_the_turn_is_stopped(
    tmp_path: Path, delivered: bool
) -> None:
    """Carol's tool call needs a card, which waits until alice's and bob's replies are posted (Slack is slow);
    the turn is stopped meanwhile. Her request was recorded and never settled: every later queue notice in the
    channel said a tool call waited for someone to approve it on its card, a card that was never posted."""

    async def events(turn_input: TurnInput, stop: Callable[[], Any]) -> AsyncIterator[AgentReply]:
        yield reply("alice")
        yield reply("bob")
        await stop()
        assert turn_input.approvals is not None
        request = ApprovalRequest("carol", "agent-carol", "agent-carol", (ToolCall("call-1", "shout", "{}"),))
        await turn_input.approvals.decide(request)
        yield reply("carol")

    async def main() -> tuple[str, list[Approval], list[Approval]]:
        status, worker, job = await run_turn(tmp_path, delivered, events)
        open_rows = await worker.desk.store.open_in("T1", "C1")
        rows = await worker.desk.store.for_step(job.turn_id, "agent-carol")
        await worker.store.close()
        return status, open_rows, rows

    status, open_rows, rows = asyncio.run(main())
    assert status == "stopped"
    assert [row.card_ts for row in rows] == [None], "the card was posted though the turn was stopped"
    assert open_rows == [], "the stopped turn's tool call still waits for a decision"
    assert [row.outcome for row in rows] == ["stopped"]


def asking_bob_while_alice_is_posted(asked: list[str]) -> Events:
    """Alice answers; bob is being asked (his step journaled, unanswered) while her reply is posted."""

    async def events(turn_input: TurnInput, _stop: Callable[[], Any]) -> AsyncIterator[AgentReply]:
        asked.append("alice")
        yield reply("alice")
        asked.append("bob")
        turn_input.approvals._running.sending.add("agent-bob")  # type: ignore[union-attr]
        await asyncio.sleep(5)  # bob's model call, cut short by the failed post
        yield reply("bob")

    return events


def test_a_post_slack_did_not_take_while_down_leaves_the_agent_asked_meanwhile_running(tmp_path: Path) -> None:
    """Slack down past the poster's tries while bob is asked: the turn is run again once Slack answers
    (turn_runs.py), so bob's run is not cancelled mid-step (the run made again would find his step unanswered and
    could ask him again or recover half an answer); the failure is raised for turn_runs to wait on."""
    asked: list[str] = []
    cancelled: list[Any] = []
    down = SlackPostError("chat.postMessage", "http_503", unknown=True)

    with pytest.raises(SlackPostError) as raised:
        asyncio.run(run_turn(tmp_path, True, asking_bob_while_alice_is_posted(asked), down, cancelled))
    assert raised.value.unavailable
    assert asked == ["alice", "bob"]
    assert cancelled == [], "bob's run was cancelled though the turn runs again"


def test_a_post_refused_for_good_still_cancels_the_agent_asked_meanwhile(tmp_path: Path) -> None:
    """not_in_channel: nothing the turn asks can be posted, so bob's run answers nobody and is cancelled."""
    asked: list[str] = []
    cancelled: list[Any] = []
    gone = SlackPostError("chat.postMessage", "not_in_channel")

    async def main() -> str:
        status, worker, _job = await run_turn(tmp_path, True, asking_bob_while_alice_is_posted(asked), gone, cancelled)
        await worker.store.close()
        return status

    assert asyncio.run(main()) == "failed"
    assert cancelled == [{"agent-bob"}]
