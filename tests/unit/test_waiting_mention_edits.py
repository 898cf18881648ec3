"""A waiting mention's edits reach the bridge out of order (Slack's Events API promises no order, and a
delivery that failed is retried by Slack a minute later, with the payload it first had): the turn must answer the
words the message has now, not those of whichever edit came last."""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import Binding, Turn
from bridge.slack.listeners import events
from tests.reference import SLACK, load
from tests.unit.test_event_listeners import _app, _dispatch
from tests.unit.test_relay import SlowPoster, Worker, relaying, until, until_done
from tests.unit.test_slack_changes import CREW

MENTION = load(SLACK / "events" / "app_mention.json")
EDITED = load(SLACK / "events" / "app_mention_edited.json")
REPLY = load(SLACK / "events" / "message_in_thread.json")


def _mention(ts: str, text: str, event_id: str) -> dict[str, Any]:
    body = copy.deepcopy(MENTION)
    body["event"].update(ts=ts, text=text, event_ts=ts)
    body["event"].pop("thread_ts", None)
    body["event_id"] = event_id
    return body


def _edited(ts: str, text: str, edited_at: str, event_id: str) -> dict[str, Any]:
    """The app_mention Slack sends again for an edit (reference/slack/events/app_mention_edited.json)."""
    body = copy.deepcopy(EDITED)
    body["event"].update(ts=ts, text=text, event_ts=edited_at, edited={"user": "U0123ABCD", "ts": edited_at})
    body["event_id"] = event_id
    return body


def _changed(ts: str, text: str, was: str, edited_at: str, event_id: str) -> dict[str, Any]:
    """message_changed for the same edit, as a person's edit of their message comes."""
    message = {"type": "message", "user": "U0123ABCD", "text": text, "ts": ts,
               "edited": {"user": "U0123ABCD", "ts": edited_at}}
    event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": "C0123ABCD",
             "channel_type": "channel", "ts": edited_at, "event_ts": edited_at, "message": message,
             "previous_message": {"type": "message", "user": "U0123ABCD", "ts": ts, "text": was}}
    envelope = {k: v for k, v in EDITED.items() if k != "event"}
    return {**envelope, "event_id": event_id, "event": event}


BOT = "<@U0BOTABCD>"


def _answered(tmp_path: Path, *bodies: dict[str, Any]) -> list[str]:
    """A first mention holds the channel; a second waits behind it while `bodies` arrive; the words each turn ran."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster=SlowPoster()) as rig:
            app = _app()
            events.register(app, rig.relay)
            await _dispatch(app, _mention("1764064700.000001", f"{BOT} first", "Ev1"))
            await until(lambda: bool(rig.worker.jobs))  # it holds the channel
            for body in bodies:
                await _dispatch(app, body)
            rig.worker.go_on.set()
            await asyncio.wait_for(until_done(rig.store), 10)
            return rig.worker.texts()

    return asyncio.run(main())


TS = "1764064800.123456"
THREAD = "1764064600.000001"


def in_thread(body: dict[str, Any]) -> dict[str, Any]:
    """The event of a reply in the thread THREAD."""
    body["event"]["thread_ts"] = THREAD
    if "message" in body["event"]:
        body["event"]["message"]["thread_ts"] = THREAD
    return body


def test_an_older_edit_delivered_after_a_newer_one_does_not_undo_it(tmp_path: Path) -> None:
    """The person fixed their waiting question twice ("restart staging" -> "restart prod" -> "do NOT restart
    anything"). The first edit's app_mention reached the bridge last (a retry after a failed delivery, or simply
    later: Slack delivers events concurrently): the agents were asked "restart prod", words the message no longer
    has."""
    answered = _answered(
        tmp_path,
        _mention(TS, f"{BOT} restart staging", "Ev2"),
        _changed(TS, f"{BOT} restart prod", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
        _changed(TS, f"{BOT} do NOT restart anything", f"{BOT} restart prod", "1764064840.000000", "Ev4"),
        _edited(TS, f"{BOT} do NOT restart anything", "1764064840.000000", "Ev5"),
        _edited(TS, f"{BOT} restart prod", "1764064830.000000", "Ev6"),  # the first edit's twin, late
    )
    assert answered == ["first", "do NOT restart anything"], answered


def test_an_edit_that_overtakes_its_mentions_retry_is_answered(tmp_path: Path) -> None:
    """The mention's first delivery failed (the bridge restarting); the person fixed a typo; the edit arrived, then
    Slack's retry of the mention, with its first words. A deletion that overtakes the retry is remembered
    (docs/mentions.md); an edit is lost, and the agents are asked the words the person corrected."""
    answered = _answered(
        tmp_path,
        _changed(TS, f"{BOT} restart prod", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
        _edited(TS, f"{BOT} restart prod", "1764064830.000000", "Ev5"),
        _mention(TS, f"{BOT} restart staging", "Ev2"),  # X-Slack-Retry-Num: 1, the payload as first sent
    )
    assert answered == ["first", "restart prod"], answered


def test_a_waiting_mention_edited_to_stop_is_not_sent_to_the_agents(tmp_path: Path) -> None:
    """The person edited their waiting mention in a thread down to `@bot stop` (they no longer want it answered):
    the turn is taken back. docs/mentions.md: "`@bot stop` in a thread ... is never sent to the agents"; the edit
    gave the waiting turn the word "stop" as its question, and the agents were asked "stop"."""
    answered = _answered(
        tmp_path,
        in_thread(_mention(TS, f"{BOT} summarise the incident", "Ev2")),
        in_thread(_changed(TS, f"{BOT} stop", f"{BOT} summarise the incident", "1764064830.000000", "Ev3")),
        in_thread(_edited(TS, f"{BOT} stop", "1764064830.000000", "Ev5")),
    )
    assert answered == ["first"], "the agents were asked 'stop'" if "stop" in answered else answered


def test_a_stop_edit_that_overtakes_the_retry_is_kept(tmp_path: Path) -> None:
    """The thread mention's first delivery failed; the person edited it to `@bot stop`; Slack's retry came with
    the first words. An edit that overtakes its mention's retry is kept, one that takes the question back too:
    the agents were asked the words the person stopped."""
    answered = _answered(
        tmp_path,
        in_thread(_changed(TS, f"{BOT} stop", f"{BOT} summarise the incident", "1764064830.000000", "Ev3")),
        in_thread(_edited(TS, f"{BOT} stop", "1764064830.000000", "Ev5")),
        in_thread(_mention(TS, f"{BOT} summarise the incident", "Ev2")),
    )
    assert answered == ["first"], answered


def test_an_edit_away_that_overtakes_the_retry_is_kept(tmp_path: Path) -> None:
    """The mention, handed to a colleague before Slack's retry of it came, is left to them: no turn."""
    answered = _answered(
        tmp_path,
        _changed(TS, "<@U0OTHER1> restart staging", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
        _mention(TS, f"{BOT} restart staging", "Ev2"),
    )
    assert answered == ["first"], answered


def test_an_edit_back_to_the_bot_after_one_away_before_the_retry_is_answered(tmp_path: Path) -> None:
    """Handed to a colleague (830), then given back to the bot with new words (840), both before the retry: the
    newest edit holds, whichever came last."""
    answered = _answered(
        tmp_path,
        _changed(TS, f"{BOT} restart prod", "<@U0OTHER1> restart staging", "1764064840.000000", "Ev4"),
        _changed(TS, "<@U0OTHER1> restart staging", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
        _mention(TS, f"{BOT} restart staging", "Ev2"),
    )
    assert answered == ["first", "restart prod"], answered

def test_a_late_stop_edit_does_not_undo_a_newer_question(tmp_path: Path) -> None:
    """The person edited their waiting thread mention to `@bot stop` (830), then back to a question (840); the
    newer edit came first. The older edit, delivered late, took the turn back: the message asks a question now."""
    answered = _answered(
        tmp_path,
        in_thread(_mention(TS, f"{BOT} summarise the incident", "Ev2")),
        in_thread(_changed(TS, f"{BOT} summarise it please", f"{BOT} stop", "1764064840.000000", "Ev4")),
        in_thread(_changed(TS, f"{BOT} stop", f"{BOT} summarise the incident", "1764064830.000000", "Ev3")),
    )
    assert answered == ["first", "summarise it please"], answered


def test_a_late_edit_away_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    """A waiting top-level mention handed to a colleague (830), then given back to the bot (840); the older edit,
    delivered last, took the turn back."""
    answered = _answered(
        tmp_path,
        _mention(TS, f"{BOT} restart staging", "Ev2"),
        _changed(TS, f"{BOT} restart prod", "<@U0OTHER1> restart staging", "1764064840.000000", "Ev4"),
        _changed(TS, "<@U0OTHER1> restart staging", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
    )
    assert answered == ["first", "restart prod"], answered


def test_a_late_edit_to_nothing_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    """A waiting mention edited down to the bot's mention alone, no files (830), then to a question (840); the
    emptied edit, delivered last (as message_changed and as the app_mention sent again), took the turn back."""
    emptied = _changed(TS, BOT, f"{BOT} restart staging", "1764064830.000000", "Ev3")
    emptied["event"]["message"]["files"] = []
    twin = _edited(TS, BOT, "1764064830.000000", "Ev5")
    twin["event"]["files"] = []
    answered = _answered(
        tmp_path,
        _mention(TS, f"{BOT} restart staging", "Ev2"),
        _changed(TS, f"{BOT} restart prod", BOT, "1764064840.000000", "Ev4"),
        emptied,
        twin,
    )
    assert answered == ["first", "restart prod"], answered

def test_one_edit_is_not_logged_as_an_older_edit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One edit comes twice, as message_changed and as the app_mention sent again, with one `edited.ts`: the same
    edit, not an older one delivered late (every ordinary edit of a waiting mention logged that)."""
    caplog.set_level(logging.INFO)
    answered = _answered(
        tmp_path,
        _mention(TS, f"{BOT} restart staging", "Ev2"),
        _changed(TS, f"{BOT} restart prod", f"{BOT} restart staging", "1764064830.000000", "Ev3"),
        _edited(TS, f"{BOT} restart prod", "1764064830.000000", "Ev5"),
    )
    assert answered == ["first", "restart prod"], answered
    said = [r.getMessage() for r in caplog.records if "older edit" in r.getMessage()]
    assert not said, said

def test_a_follow_up_edited_to_cancel_answers_the_agents_question(tmp_path: Path) -> None:
    """The agents asked in their thread 'reply proceed or cancel'. The person replied 'proceed' (no mention), which
    waited behind another thread's turn, then corrected it to 'cancel'. A new bare 'cancel' where nothing else of
    the thread runs or waits is said to the agents (listeners/events.py `stopped`), and so is the edit's: the
    agents hear the answer to their question, it is not taken back as a stop."""

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Worker, poster=SlowPoster()) as rig:
            await rig.store.put_binding(Binding("T0123ABCD", "C0123ABCD", CREW))
            old = Turn("T0123ABCD", "C0123ABCD", THREAD, THREAD, "U0123ABCD", "deploy?", "Ev0")
            done = await rig.store.accept_turn(old, "o0")
            assert done and await rig.store.take_turn(done) is not None
            await rig.store.finish_turn(done, "done")  # the agents asked 'reply proceed or cancel'
            app = _app()
            events.register(app, rig.relay)
            await _dispatch(app, _mention("1764064700.000001", f"{BOT} first", "Ev1"))
            await until(lambda: bool(rig.worker.jobs))  # another thread's turn holds the channel
            body = copy.deepcopy(REPLY)
            body["event"].update(ts=TS, event_ts=TS, thread_ts=THREAD, text="proceed")
            body["event_id"] = "Ev2"
            await _dispatch(app, body)
            await _dispatch(app, in_thread(_changed(TS, "cancel", "proceed", "1764064830.000000", "Ev3")))
            rig.worker.go_on.set()
            await asyncio.wait_for(until_done(rig.store), 10)
            return rig.worker.texts()

    answered = asyncio.run(main())
    assert answered == ["first", "cancel"], answered


def test_a_thread_mention_edited_to_a_bare_stop_says_it_was_edited_to_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A waiting mention in a thread the bot never answered, edited from '@bot summarise' to 'stop': it is taken
    back, and its log and queue notice say it was edited to stop, not 'to speak to someone else' (second reader
    secLF: the message speaks to no one)."""
    caplog.set_level(logging.INFO, logger="bridge.relay")
    answered = _answered(
        tmp_path,
        in_thread(_mention(TS, f"{BOT} summarise the incident", "Ev2")),
        in_thread(_changed(TS, "stop", f"{BOT} summarise the incident", "1764064830.000000", "Ev3")),
    )
    assert answered == ["first"], answered
    withdrawn = [r.getMessage() for r in caplog.records if "turn withdrawn" in r.getMessage()]
    assert withdrawn and "edited to stop" in withdrawn[0], withdrawn
