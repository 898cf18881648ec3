"""A turn whose runner runs on while its replies are posted (bridge/post_order.py), meeting a stop: the posting
task cannot notice it while a slow post is under way, so the runner must, before it asks another agent.
Everything around the worker is a double; the store is real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.domain import AgentReply, TurnInput
from tests.unit.test_turn_end import Recorder, settings, worker_for


@pytest.mark.parametrize("delivered", [True, False], ids=["stop-delivered-here", "stop-recorded-elsewhere"])
def test_a_stop_while_a_reply_is_posted_asks_no_agent_more(tmp_path: Path, delivered: bool) -> None:
    """Alice's reply is being posted (Slack is slow) while bob answers; a stop lands as he does: delivered here
    (TurnStops.stop: `stopped_by` set, then Letta's cancel round trip before the turn's task is cancelled), or
    only recorded (a channel-wide stop still cancelling an earlier turn's runs, another process, a workspace kit
    replaced). Before, the flush after each reply checked for a stop before the runner went on to the next agent;
    the runner now went straight on and carol was asked after the stop."""

    async def main() -> tuple[str, list[str]]:
        worker, store, job, poster = await worker_for(tmp_path, settings())
        await store.set_turn_status(job.turn_id, "running")
        slack, letta_cancel = asyncio.Event(), asyncio.Event()
        asked: list[str] = []
        stopping: list[asyncio.Task[bool]] = []

        async def post(*_: Any, **__: Any) -> str:
            await slack.wait()
            return "9.000001"

        async def cancel_letta(_running: Any) -> list[str]:
            await letta_cancel.wait()
            return []

        poster.post = post  # type: ignore[method-assign]
        poster.known_postable = lambda _channel: True  # type: ignore[attr-defined]
        worker.stops.cancel_letta = cancel_letta  # type: ignore[method-assign]
        worker._chooser = SimpleNamespace(appserver=None, bridge=None, server=None)  # type: ignore[assignment]
        worker._journaled = {}

        class Runner:
            name = "bridge"

            async def run(self, *_: Any) -> AsyncIterator[AgentReply]:
                asked.append("alice")
                yield AgentReply("alice", "hello from alice", "agent-a", "agent-a", 0)
                asked.append("bob")
                if delivered:
                    stopping.append(asyncio.create_task(worker.stops.stop(job.turn_id, "U1")))
                else:
                    await store.stop_turns("T1", "C1", "1.000001", "U1")
                await asyncio.sleep(0.05)  # bob's model call ends as the stop lands
                yield AgentReply("bob", "hello from bob", "agent-b", "agent-b", 0)
                asked.append("carol")
                yield AgentReply("carol", "hello from carol", "agent-c", "agent-c", 0)

        async def converse(_job: Any, binding: Any, drafts: Any, running: Any, _approvals: Any) -> int:
            turn_input = TurnInput("hi", job.otid, None)
            return await worker._relay_events(job, binding, Runner(), turn_input, drafts, running)  # type: ignore[arg-type]

        async def slack_and_letta_answer() -> None:
            await asyncio.sleep(0.3)
            slack.set()
            letta_cancel.set()

        worker._converse = converse  # type: ignore[method-assign]
        drafts = SimpleNamespace(
            abandon=lambda *_: asyncio.sleep(0, False),
            showed_tasks=lambda _k: False,
            replace=lambda *_: asyncio.sleep(0),
        )
        target = SimpleNamespace(description="the crew", ref="group-1", agents=())
        binding = SimpleNamespace(target=target)
        answering = asyncio.create_task(slack_and_letta_answer())
        async with worker.stops.track(job.turn_id, "T1", "C1", "1.000001") as running:
            running.target = target  # type: ignore[assignment]
            status = await worker._run_shown(job, binding, drafts, running, Recorder())  # type: ignore[arg-type]
        await asyncio.gather(answering, *stopping)
        await store.close()
        return status, asked

    status, asked = asyncio.run(main())
    assert status == "stopped", status
    assert asked == ["alice", "bob"], "an agent was asked after the turn was stopped"
