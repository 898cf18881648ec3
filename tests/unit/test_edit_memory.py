"""The edits (and deletions) that found no waiting turn are remembered for the mention's retry
(bridge/message_changes.py), in this process's memory: only those of messages the bot would answer, each for
KEPT_FOR seconds, and never more than a few hundred of a kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain import Binding, Turn
from bridge.message_changes import KEPT_FOR, REMEMBERED, EarlyChanges
from bridge.slack.listeners import events
from tests.unit.test_event_listeners import _app, _dispatch
from tests.unit.test_relay import SlowPoster, Worker, relaying
from tests.unit.test_slack_changes import CREW
from tests.unit.test_waiting_mention_edits import BOT, THREAD, TS, _changed, in_thread


def test_expired_changes_are_forgotten() -> None:
    """A change older than KEPT_FOR seconds can no longer meet its mention's retry: it leaves the memory, rather
    than staying until ten thousand newer ones push it out."""
    now = [0.0]
    early = EarlyChanges(lambda: now[0])
    early.edited(("T1", "C1", "1.000001"), "words " * 500, None, "2.000000")
    early.deleted(("T1", "C1", "1.000002"))
    now[0] = KEPT_FOR + 1
    early.edited(("T1", "C1", "1.000003"), "new", None, "3.000000")
    early.deleted(("T1", "C1", "1.000004"))
    assert early.held() == 2, "only the two changes still within KEPT_FOR"
    assert early.edit_of(("T1", "C1", "1.000003")) is not None and early.was_deleted(("T1", "C1", "1.000004"))


def test_the_memory_keeps_a_small_number_of_changes() -> None:
    """However many messages are edited within KEPT_FOR, the memory holds at most REMEMBERED of each kind, a small
    number: Slack retries a failed delivery within minutes, for few messages at once."""
    early = EarlyChanges(lambda: 0.0)
    for n in range(REMEMBERED + 10):
        early.edited(("T1", "C1", f"1.{n:06}"), "x", None, f"2.{n:06}")
    assert early.held() == REMEMBERED <= 1_000
    assert early.edit_of(("T1", "C1", f"1.{REMEMBERED + 9:06}")) is not None, "the newest kept"


def test_edits_of_messages_the_bot_would_not_answer_are_not_remembered(tmp_path: Path) -> None:
    """Every edit that found no waiting turn was remembered with its words: any channel message, any thread reply
    in a thread the bot never answered, the edit of a mention whose turn already ran. Only an edit of a message the
    bot would answer, with no turn yet (its mention's retry may still come), is kept."""

    async def main() -> int:
        async with relaying(tmp_path / "b.db", Worker, poster=SlowPoster()) as rig:
            await rig.store.put_binding(Binding("T0123ABCD", "C0123ABCD", CREW))
            for n, ts in enumerate((TS, THREAD)):  # a mention whose turn ran, and the bot's thread
                turn = Turn("T0123ABCD", "C0123ABCD", ts, ts, "U0123ABCD", "a", f"Ev0{n}")
                done = await rig.store.accept_turn(turn, f"o{n}")
                assert done and await rig.store.take_turn(done) is not None
                await rig.store.finish_turn(done, "done")
            app = _app()
            events.register(app, rig.relay)
            await _dispatch(app, _changed("1764064900.000001", "lunch at 1?", "lunch?", "1764064930.000000", "Ev1"))
            elsewhere = _changed("1764064900.000002", "see the logs", "see logs", "1764064931.000000", "Ev2")
            elsewhere["event"]["message"]["thread_ts"] = "1764064000.000001"  # a thread the bot never answered
            await _dispatch(app, elsewhere)
            await _dispatch(app, _changed(TS, f"{BOT} b", f"{BOT} a", "1764064932.000000", "Ev3"))  # its turn ran
            await _dispatch(app, _changed("1764064900.000003", f"{BOT} now", f"{BOT} nw", "1764064933.000000", "Ev4"))
            follow_up = in_thread(_changed("1764064900.000004", "and prod", "and prd", "1764064934.000000", "Ev5"))
            await _dispatch(app, follow_up)  # a follow-up in the bot's thread, not arrived yet
            return rig.relay._changes._early.held()

    assert asyncio.run(main()) == 2, "only the mention and the follow-up not yet arrived"
