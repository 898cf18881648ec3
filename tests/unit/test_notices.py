"""The queue notice's rules, pure: its words, and when a notice is worth an edit."""

from __future__ import annotations

from bridge.notice_words import STALE_SECONDS, Pending, queued_text, worth_editing


def test_the_notice_says_how_many_messages_are_ahead_and_where() -> None:
    assert queued_text(1, "thread") == "Queued: I'll answer after the 1 earlier message in this thread."
    assert queued_text(3, "channel") == "Queued: I'll answer after the 3 earlier messages in this channel."


def test_a_dm_s_notice_does_not_call_it_a_channel() -> None:
    in_dm = "Queued: I'll answer after the 2 earlier messages in our conversation."
    assert queued_text(2, "channel", direct=True) == in_dm
    assert queued_text(1, "thread", direct=True) == "Queued: I'll answer after the 1 earlier message in this thread."


def test_the_notice_says_when_a_tool_call_ahead_waits_for_a_decision() -> None:
    assert queued_text(1, "thread", Pending("finn", "shout")) == (
        "Queued: I'll answer after the 1 earlier message in this thread; one of them waits for someone to approve"
        " or deny finn's tool call `shout` on its card."
    )


def test_a_notice_never_understates_and_follows_a_falling_count_in_halves() -> None:
    assert worth_editing(shown=2, now_ahead=5, seconds_since_edit=0)  # the wait grew: always said
    assert not worth_editing(shown=5, now_ahead=5, seconds_since_edit=STALE_SECONDS)
    assert not worth_editing(shown=100, now_ahead=51, seconds_since_edit=10)
    assert worth_editing(shown=100, now_ahead=50, seconds_since_edit=10)
    assert worth_editing(shown=100, now_ahead=99, seconds_since_edit=STALE_SECONDS), "a slow queue still moves"
    shown, edits = 99, 0
    for ahead in range(98, 0, -1):  # a queue of 99 draining one by one, checked often
        if worth_editing(shown, ahead, seconds_since_edit=10):
            shown, edits = ahead, edits + 1
    assert edits <= 7, "about log2(N) edits, not N"
