"""HTTP_INGRESS=process: `serve` on SQLite acknowledges Slack's events from a process of its own
(bridge/ingress_process.py): an acknowledgement does not wait for the bridge's interpreter, the child never
outlives the bridge, and a bridge whose ingress died stops with an error instead of serving nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import open_world
from tests.e2e.harness import BridgeProcess, inbox_drained
from tests.e2e.test_inbox import finished


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def ingress_of(bridge: BridgeProcess) -> int:
    assert bridge.proc is not None
    (child,) = children(bridge.proc.pid)
    return child


def gone(pid: int, timeout: float = 5.0) -> bool:
    """The process has ended and been reaped (or is a zombie nobody waits for any more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_an_event_is_acknowledged_while_the_bridge_process_is_frozen_and_answered_once_it_runs(
    tmp_path: Path,
) -> None:
    with open_world("bridge", tmp_path, HTTP_INGRESS="process") as world:
        crew = world.bound_crew(("alice", "bob"))
        assert world.bridge.proc is not None
        os.kill(world.bridge.proc.pid, signal.SIGSTOP)  # no turn work, no interpreter: only the ingress runs
        try:
            event, response = world.bridge.mention("while frozen", crew.channel)
            assert response.status_code == 200
        finally:
            os.kill(world.bridge.proc.pid, signal.SIGCONT)
        finished(world.slack, crew.channel, event["ts"])
        assert len(world.slack.posts(crew.channel, event["ts"])) == 2
        inbox_drained(tmp_path / "bridge.db")


def test_the_ingress_process_ends_with_the_bridge_even_when_it_is_killed(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, HTTP_INGRESS="process") as world:
        child = ingress_of(world.bridge)
        world.bridge.kill()
        assert gone(child), "the ingress process outlived a bridge killed with -9"
        world.bridge.restart()  # its port was given back: the next start listens on it
        crew = world.bound_crew(("alice",))
        event, response = world.bridge.mention("after a kill", crew.channel)
        assert response.status_code == 200
        finished(world.slack, crew.channel, event["ts"])


def test_a_stop_and_a_ctrl_c_sent_to_both_processes_end_both_cleanly(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, HTTP_INGRESS="process") as world:
        assert world.bridge.proc is not None
        for sig in (signal.SIGINT, signal.SIGTERM):  # a terminal's Ctrl-C, a platform's stop: the whole group
            child = ingress_of(world.bridge)
            os.kill(child, sig)
            os.kill(world.bridge.proc.pid, sig)
            assert world.bridge.proc.wait(30) == 0
            assert gone(child)
            logs = world.bridge.logs()
            assert "bridge stopped" in logs and "Traceback" not in logs, logs
            world.bridge.restart(tmp_path / f"{sig.name}.log")


def test_a_bridge_whose_ingress_process_died_stops_with_an_error_and_loses_no_event(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, HTTP_INGRESS="process") as world:
        crew = world.bound_crew(("alice",))
        assert world.bridge.proc is not None
        os.kill(ingress_of(world.bridge), signal.SIGKILL)
        assert world.bridge.proc.wait(30) == 1
        logs = world.bridge.logs()
        assert "the ingress process ended unexpectedly (killed by signal 9)" in logs, logs
        assert "error: the ingress process ended unexpectedly" in logs
        with httpx.Client() as client:  # nobody listens any more: Slack retries, to the next start
            try:
                client.get(f"{world.bridge.url}/healthz", timeout=2)
                listening = True
            except httpx.ConnectError:
                listening = False
        assert not listening
        world.bridge.restart()
        event, response = world.bridge.mention("after the restart", crew.channel)
        assert response.status_code == 200
        finished(world.slack, crew.channel, event["ts"])


def test_by_default_the_ingress_is_a_thread_of_the_bridge_s_own_process(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        assert world.bridge.proc is not None
        assert children(world.bridge.proc.pid) == []
        crew = world.bound_crew(("alice",))
        event, response = world.bridge.mention("on the thread", crew.channel)
        assert response.status_code == 200
        finished(world.slack, crew.channel, event["ts"])



def test_a_stop_ends_the_bridge_though_its_ingress_process_is_frozen(tmp_path: Path) -> None:
    """The bridge waited for the child's word that it stopped listening, and then for its end, with no bound: a
    frozen (or stuck) child kept a SIGTERM'd bridge running until the platform's kill -9."""
    with open_world("bridge", tmp_path, HTTP_INGRESS="process") as world:
        assert world.bridge.proc is not None
        child = ingress_of(world.bridge)
        os.kill(child, signal.SIGSTOP)
        try:
            os.kill(world.bridge.proc.pid, signal.SIGTERM)
            assert world.bridge.proc.wait(40) == 0
            assert gone(child)
        finally:
            if not gone(child, 0.1):
                os.kill(child, signal.SIGKILL)
        logs = world.bridge.logs()
        assert "the ingress process did not answer within" in logs and "Traceback" not in logs, logs
        world.bridge.restart()  # its port and inbox were given back


def test_http_ingress_process_where_it_cannot_apply_is_said_not_silently_ignored(tmp_path: Path) -> None:
    """With the events inbox off (or on PostgreSQL) there is no ingress to move into a process: the setting was
    ignored without a word."""
    with open_world("bridge", tmp_path, HTTP_INGRESS="process", HTTP_EVENTS_INBOX="false") as world:
        assert world.bridge.proc is not None
        assert children(world.bridge.proc.pid) == []
        assert "HTTP_INGRESS=process has no effect here" in world.bridge.logs()
        assert "with HTTP_EVENTS_INBOX=false events are acknowledged on the main loop" in world.bridge.logs()
        crew = world.bound_crew(("alice",))
        event, response = world.bridge.mention("on the main loop", crew.channel)
        assert response.status_code == 200
        finished(world.slack, crew.channel, event["ts"])
