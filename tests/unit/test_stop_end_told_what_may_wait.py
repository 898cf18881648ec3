"""The process ending a stop looks in history for a request the agent made after the stop's denial, once no run that
can be the denial's, or the agent's answer to it, is going; when one is still listed going after the wait
(recovery.PATIENCE), what waits is not known. Before, that was taken for nothing waiting: the turn was marked stopped
and a request left pending blocked the thread with nobody told (review secKH of 24b6e19). Then any run of the agent
counted, and the thread was told the decision was still being worked on: a stop whose denial ended normally raised a
false alarm with a wrong reason when the agent was busy elsewhere (review secKL of f126310)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentRef, Target
from bridge.letta import recovery
from bridge.letta.client import LettaClient
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import TURN
from tests.unit.test_stop_end import Recorder
from tests.unit.test_stop_end_asked_again import asking_once, denied_unread, waiting_turn


def told_with_a_run_going(tmp_path: Path, begun: timedelta, in_its_step: bool = False) -> tuple[list[str], str]:
    """What the thread is told when the stop's end finds a run of finn's listed going throughout, begun `begun`
    before the end (after the stop's denial when short), and the denial's tool call id. `in_its_step`: the decision
    went but its step has not stored it, so history still shows its request waiting."""

    async def main(letta: FakeLetta, finn: str) -> tuple[list[Any], str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            if in_its_step:
                turn_id, desk, rows, settings = await waiting_turn(store, client, finn)
                for row in rows:
                    assert await desk.store.sending(row.id)
            else:
                turn_id, desk, rows, settings = await denied_unread(store, client, finn)
            listed = client._run_list
            run = {"id": "run-1", "status": "running", "created_at": (datetime.now(UTC) - begun).isoformat()}

            async def going(*a: Any) -> Any:
                return [*await listed(*a), run]
            client._run_list = going  # type: ignore[method-assign]
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            thread = Recorder()
            end = StopEnd(store, TurnStops(store, client, 0), thread, Recorder(True), desk,  # type: ignore[arg-type]
                          settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", Target("agents", (AgentRef(finn, "finn"),)))
            return thread.calls, rows[0].asked.tool_call_id
        finally:
            await client.aclose()
            await store.close()

    with FakeLetta(version="0.16.8") as letta:
        calls, call_id = asyncio.run(main(letta, asking_once(letta)))
    return [c[3].text for c in calls if c[0] == "post" and c[1:3] == ("C1", "1.000001") and "could not tell" in
            c[3].text], call_id


def test_a_run_still_going_after_the_stops_denial_is_told_as_a_run_not_as_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of finn's begun after the stop's denial is still listed going after the wait: the thread is told that a
    request finn asked after it may wait on Letta, what that blocks, and how an operator finds and denies it (the
    decided call's id given); the decision, whose request history shows returned, is not blamed."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)
    told, call_id = told_with_a_run_going(tmp_path, timedelta(0))
    assert told == [
        "After the stop, a run of finn's was still going after 0.5 seconds, so the bridge could not tell whether finn"
        f" asked for another tool after tool call id `{call_id}` was decided: such a request may wait on Letta, which"
        " takes no new message for finn, in any channel or thread that uses finn, until it is decided. An operator"
        " can find it in the agent's history in Letta (an approval request with no tool return) and deny it with an"
        " approval message to the agent."
    ], told


def test_a_run_begun_before_the_stops_denial_raises_no_alarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another send of finn's, begun an hour before the stop's denial, is still listed going: it cannot be the
    denial's run nor finn's answer to it, so the end reads history, finds nothing waiting and tells the thread
    nothing."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)
    told, _ = told_with_a_run_going(tmp_path, timedelta(hours=1))
    assert told == [], told




def test_a_run_begun_within_the_clocks_slack_before_the_denial_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run Letta says began 20 seconds before the stop's denial may be its own, Letta's clock behind the bridge's
    (active_runs.CLOCK_SLACK, 30 s; docs/approvals.md says so): still going after the wait, it is told as a run."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)
    told, _ = told_with_a_run_going(tmp_path, timedelta(seconds=20))
    assert len(told) == 1 and told[0].startswith("After the stop, a run of finn's was still going"), told

def test_a_decided_request_still_waiting_while_a_run_goes_is_told_as_what_may_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's decision went, its request still shows waiting in history and a run begun since (maybe the
    decision's own, a cancel having timed out) is still going after the wait: the thread is told the decided call
    itself, or one finn asked for after it, may wait; never that it was decided (review secKQ of 7584aa2)."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.5)
    told, call_id = told_with_a_run_going(tmp_path, timedelta(0), in_its_step=True)
    assert told == [
        "After the stop, the bridge could not tell whether finn still waits for a tool call to be decided (a run was"
        f" still going after 0.5 seconds): tool call id `{call_id}`, decided before, or one finn asked for after it,"
        " may wait on Letta, which takes no new message for finn, in any channel or thread that uses finn, until it"
        " is decided. An operator can find it in the agent's history in Letta (an approval request with no tool"
        " return) and deny it with an approval message to the agent."
    ], told
