"""A channel disconnected while mentions wait in a thread: the running turn finishes with the agents it started
with, the waiting ones end with one notice for the thread (not one each, and not "not connected yet"), and the
thread's queue notice no longer promises an answer (turns.py `_end_unbound`, notices.py `unbound`)."""

from __future__ import annotations

from pathlib import Path

from bridge.notice_words import UNBOUND_NOTICE
from tests.e2e.conftest import open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_mentions import wait_done
from tests.e2e.test_threads import agent_inputs


def test_mentions_waiting_in_a_thread_when_its_channel_is_disconnected_are_told_once(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        alice = crew.agents["alice"]
        world.letta.set_delay(alice, 3.0)
        root, _ = world.bridge.mention("root", crew.channel)
        world.letta.wait_for(lambda: len(agent_inputs(world, alice)) == 1, 10)
        for n in range(3):
            world.bridge.mention(f"follow-up {n}", crew.channel, thread_ts=root["ts"])

        def thread() -> list[str]:
            return [m["text"] for m in world.slack.messages(crew.channel, root["ts"])]

        world.slack.wait_for(lambda: any(t.startswith("Queued:") for t in thread()), 10)
        done = run_cli(world.env, "channels", "disconnect", crew.channel)
        assert done.returncode == 0, done.stderr
        wait_done(world, crew.channel, root["ts"])
        world.slack.wait_for(lambda: UNBOUND_NOTICE in thread(), 20)
        told = [t for t in thread() if "connect" in t and not t.startswith("Not answered")]
        assert len(told) == 1 and "was disconnected from Letta" in told[0], thread()
        assert "alice" in [p.args.get("username") for p in world.slack.posts(crew.channel, root["ts"])]
        assert len(agent_inputs(world, alice)) == 1, "a waiting mention reached the agents after the disconnect"
