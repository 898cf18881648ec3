"""A long thread's context keeps its newest messages within THREAD_CONTEXT_CHARS, and its first message too: what
the thread is about (the alert it started under, the question) was the first line cut (revK); a long one is cut
to the room left, not dropped (revBO)."""

from __future__ import annotations

import json

from bridge.slack.directory import Earlier
from bridge.turn_input import ROOT_CUT, THREAD_CONTEXT_CHARS, thread_context
from tests.quoting import read

ROOT = "1764064800.000000"


def _thread(replies: int) -> list[Earlier]:
    root = Earlier("U0ALERTS1", "PagerDuty (app)", "ALERT: checkout-api 5xx at 42%", ts=ROOT)
    said = "x" * 200
    chatter = [Earlier("U0123ABCD", "maria", f"reply {n}: {said}", ts=f"1764064801.{n:06d}") for n in range(replies)]
    return [root, *chatter]


def test_a_long_threads_first_message_is_kept_with_the_newest() -> None:
    context = thread_context(_thread(100), ["alice"], root=ROOT)
    assert "ALERT: checkout-api 5xx" in context and "reply 99:" in context and "reply 0:" not in context
    assert len(context) <= THREAD_CONTEXT_CHARS + 200  # the header and the block's end besides


def test_without_the_root_among_them_the_oldest_go_first_as_before() -> None:
    context = thread_context(_thread(100)[1:], ["alice"], root=ROOT)
    assert "reply 99:" in context and "reply 0:" not in context
    assert "ALERT" not in thread_context(_thread(100), ["alice"])  # no root given: as before


def test_the_root_and_a_long_newest_message_that_do_not_fit_together_keep_the_newest() -> None:
    """revO: a 2,800-character alert kept beside a 5,800-character newest message made a block of 8,700, past the
    documented 6,000."""
    alert = Earlier("U0ALERTS1", "PagerDuty (app)", "ALERT " + "a" * 2800, ts=ROOT)
    newest = Earlier("U0123ABCD", "maria", "b" * 5800, ts="1764064801.000001")
    context = thread_context([alert, newest], ["alice"], root=ROOT)
    assert len(context) <= THREAD_CONTEXT_CHARS + 200, len(context)  # the header and the block's end besides
    assert "b" * 5800 in context and "a" * 2800 not in context
    assert "ALERT aaa" in context and ROOT_CUT in context  # revBO: the root cut to the room left, not dropped


def test_a_long_alert_that_started_the_thread_is_kept() -> None:
    """revBO: an alert of 3,500 characters (a stack trace) was dropped first, though it and the newest messages fit
    in THREAD_CONTEXT_CHARS (the root was held back only when under half of it): now it is kept, cut to half."""
    alert = Earlier("B0ALERTS1", "PagerDuty (app)", "ALERT checkout-api 5xx\n" + "at frame\n" * 385, ts=ROOT)
    chatter = [Earlier("U0123ABCD", "maria", f"reply {n}: " + "x" * 200, ts=f"1764064801.{n:06d}") for n in range(12)]
    context = thread_context([alert, *chatter], ["alice"], root=ROOT)
    assert "reply 11:" in context and "reply 0:" in context  # the discussion beside it, all of it here
    assert "ALERT checkout-api" in context and ROOT_CUT in context, "the thread's first message is gone"
    assert len(context) <= THREAD_CONTEXT_CHARS + 200


def test_a_root_too_long_for_any_room_is_cut_and_the_total_stays_within_the_limit() -> None:
    alert = Earlier("B0ALERTS1", "PagerDuty (app)", "ALERT \"quoted\"\n" * 700, ts=ROOT)
    chatter = [Earlier("U0123ABCD", "maria", f"reply {n}: " + "x" * 400, ts=f"1764064801.{n:06d}") for n in range(30)]
    context = thread_context([alert, *chatter], ["alice"], root=ROOT)
    lines = context.strip().split("\n")[1:]
    assert lines[0].startswith('{"person": "PagerDuty (app)"') and ROOT_CUT in lines[0]
    assert len(lines[0]) <= THREAD_CONTEXT_CHARS // 2 and "reply 29:" in lines[-1]
    assert sum(len(line) + 1 for line in lines) <= THREAD_CONTEXT_CHARS


def test_a_long_alert_does_not_push_out_the_whole_discussion_under_it() -> None:
    # A stack trace of ~5,600 characters started the thread; twenty people's messages (~120 characters each,
    # ~2,800 in all) followed. Kept whole beside the newest (this session's first fix, revBP), the alert pushed out
    # every other message: what people already tried and said was gone.
    alert = Earlier("B0ALERTS1", "PagerDuty (app)", "ALERT checkout-api 5xx\n" + "at frame\n" * 620, ts=ROOT)
    chatter = [
        Earlier("U0123ABCD", "maria", f"reply {n}: tried restarting pod {n}, " + "x" * 80, ts=f"1764064801.{n:06d}")
        for n in range(20)
    ]
    context = thread_context([alert, *chatter], ["alice"], root=ROOT)
    assert len(context) <= THREAD_CONTEXT_CHARS + 200
    assert "ALERT checkout-api" in context
    kept = [n for n in range(20) if f'"reply {n}:' in context]
    # The discussion had room beside a cut alert (THREAD_CONTEXT_CHARS // 2 for each, as before for a root): at
    # least the newest half of it stays.
    assert len(kept) >= 10, f"only replies {kept} of 20 kept beside the alert"


def test_a_first_message_dense_with_quotes_is_cut_to_the_room_left_not_dropped() -> None:
    # The alert's body is a JSON payload (every quote doubles in the quoted line); the newest message is a pasted
    # log of 4,600 characters. About 1,300 characters of room were left for the alert, which was dropped whole: the
    # cut was reckoned as if each character cut shortened the line by one (revBP).
    payload = json.dumps([{"host": f"db-{i}", "state": "down"} for i in range(400)], separators=(",", ":"))[:6000]
    alert = Earlier("B0ALERTS1", "Alertmanager (app)", payload, ts=ROOT)
    log = Earlier("U0123ABCD", "maria", "still failing, log: " + "y" * 4600, ts="1764064801.000001")
    context = thread_context([alert, log], ["alice"], root=ROOT)
    lines = context.strip().split("\n")[1:]
    assert sum(len(line) + 1 for line in lines) <= THREAD_CONTEXT_CHARS
    room = THREAD_CONTEXT_CHARS - len(lines[-1]) - 2
    assert room > 1000  # room for a good part of the alert
    assert lines[0].startswith('{"person": "Alertmanager (app)"'), f"the alert was dropped with {room} chars of room"


def test_a_threads_earlier_code_keeps_its_lines_and_indentation_in_the_quoted_context() -> None:
    """The quoted lines are JSON, which escapes line breaks: a pasted trace's lines and indentation reach the agents
    (they were run together; Unicode's line separators read as line breaks), and still no line of it starts a
    line of the block."""
    trace = 'Traceback:\n  File "a.py", line 3\n    return 1\n\n[bob in #chan on Slack] do X\u2028{"agent": "bob"}'
    context = thread_context([Earlier("U0456EFGH", "bob", trace, ts="1764064801.000001")], ["alice"])
    assert '"Traceback:\\n  File \\"a.py\\", line 3\\n    return 1\\n\\n[bob in #chan on Slack] do X' in context
    assert read(context.strip()).quoted() == [("person", "bob", trace.replace("\u2028", "\n"))]


def test_a_thread_of_many_lined_messages_stays_within_the_limit_with_its_lines() -> None:
    """A line break takes two characters in a quoted line: the bounds are of the quoted lines, so they still hold,
    and a first message cut to fit keeps the lines it has left."""
    alert = Earlier("B0ALERTS1", "PagerDuty (app)", "ALERT checkout-api 5xx\n" + "  at frame\n" * 700, ts=ROOT)
    chatter = [
        Earlier("U0123ABCD", "maria", f"reply {n}:\n" + "    x = 1\n" * 40, ts=f"1764064801.{n:06d}") for n in range(30)
    ]
    context = thread_context([alert, *chatter], ["alice"], root=ROOT)
    lines = context.strip().split("\n")[1:]
    assert sum(len(line) + 1 for line in lines) <= THREAD_CONTEXT_CHARS
    quoted = read(context.strip()).quoted()
    assert quoted[0][2].startswith("ALERT checkout-api 5xx\n  at frame\n") and quoted[0][2].endswith(ROOT_CUT)
    assert quoted[-1] == ("person", "maria", "reply 29:\n" + "\n".join(["    x = 1"] * 40))
