"""A thread the bot answered months ago, whose turns FINISHED_TURNS_DAYS has deleted since: a new mention there goes
on as a follow-up (its Letta conversation, kept, holds what was said), without the thread's earlier messages sent to
the agent a second time as if it had never been there."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.pruner import Pruner, Timing
from bridge.store import open_store
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack

CHANNEL = "C0123ABCD"  # a channel in the fakes' workspace
CONTEXT = "Earlier in this Slack thread"  # turn_input.THREAD_CONTEXT_HEADER's start


def prune_as_if_months_passed(db: Path) -> int:
    """Every turn made 100 days old, then one retention pass of 90 days, as `serve`'s hourly one would run."""
    then = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE turns SET created_at=?, updated_at=?", (then, then))

    async def main() -> int:
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            return (await Pruner(store, 90, Timing(first_after=0.0, pause=0.0)).run_once()).turns
        finally:
            await store.close()

    return asyncio.run(main())


def test_a_mention_in_a_thread_whose_turns_were_deleted_does_not_bring_its_earlier_messages_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bridge.db"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, db, FINISHED_TURNS_DAYS="90")
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
        root = slack.add_message(CHANNEL, "Shall we ship on Friday?", user="U0456EFGH")

        def ask(text: str, answers: int) -> str:
            bridge = BridgeProcess(env).start(tmp_path / f"bridge-{answers}.log")
            try:
                assert bridge.post(event_body(mention_event(text, CHANNEL, thread_ts=root))).status_code == 200
                slack.wait_for(lambda: len(slack.posts(CHANNEL, root)) >= answers, 15)
            finally:
                bridge.stop()
            return [i.text for i in letta.inputs if i.agent_id == alice][-1]

        first = ask("what do you think?", 1)
        assert CONTEXT in first and "Shall we ship on Friday?" in first
        assert prune_as_if_months_passed(db) == 1
        again = ask("and now, months later?", 2)
        assert "and now, months later?" in again
        assert CONTEXT not in again, again
