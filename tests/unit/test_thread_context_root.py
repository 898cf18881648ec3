"""A long thread's context keeps its newest messages within THREAD_CONTEXT_CHARS, and its first message too: what
the thread is about (the alert it started under, the question) was the first line cut (revK)."""

from __future__ import annotations

from bridge.slack.directory import Earlier
from bridge.turn_input import THREAD_CONTEXT_CHARS, thread_context

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
