"""What the thread is told when an agent kept asking for tools after a stop's denials (slack/approvals.py
`left_pending_notice`): what Letta keeps waiting and for whom, in words true for the setting. With
LETTA_CONVERSATIONS on, only the thread's conversation is blocked and the denial goes to it (its id is given); off,
the agent takes no message anywhere, in any channel using it. One call is "it", several "them"."""

from __future__ import annotations

from bridge.slack.approvals import left_pending_notice, unknown_pending_notice


def test_a_conversations_left_request_names_the_conversation_and_blocks_only_it() -> None:
    """The conversation's id is given, and it is the conversation, not every message for the agent, that waits."""
    told = left_pending_notice("finn", ["shout"], ["call-1"], 6, "conv-123")
    assert "conversation `conv-123`" in told, told
    assert "to that conversation" in told and "any channel" not in told, told
    assert "until it is decided" in told and "deny it " in told and "tool call id `call-1`" in told, told


def test_an_agents_own_left_request_says_it_blocks_the_agent_in_every_channel() -> None:
    """Without conversations (or in the agent's own default thread) the agent refuses messages in every channel."""
    told = left_pending_notice("finn", ["shout", "write"], ["call-1", "call-2"], 6, None)
    assert "in any channel or thread" in told and "to the agent" in told and "conversation" not in told, told
    assert "tool calls `shout`, `write` wait on Letta" in told and "until they are decided" in told, told
    assert "tool call ids `call-1`, `call-2`" in told, told


def test_a_conversations_request_not_known_to_wait_is_said_as_may_wait_in_that_conversation() -> None:
    """When the stop's end could not read what the agent asked (unknown_pending_notice), the thread is told a request
    may wait in the thread's conversation, found in its history and denied there, the decided calls named."""
    told = unknown_pending_notice("finn", ["call-1", "call-2"], "Letta was still working", "conv-123")
    assert "could not tell whether finn still waits" in told and "(Letta was still working)" in told, told
    assert "tool call ids `call-1`, `call-2`, decided before, or one finn asked for after it, may wait" in told, told
    assert "conversation `conv-123` until it is decided" in told and "any channel" not in told, told
    assert "in that conversation's history" in told and "approval message to that conversation." in told, told


def test_a_run_still_going_is_said_as_a_run_and_does_not_blame_the_decisions() -> None:
    """When only a run of the agent's was still going (unknown_pending_notice's `going`), the thread is told that, and
    that a request asked after the decided calls may wait; not that Letta was still working on the decision."""
    told = unknown_pending_notice("finn", ["call-1", "call-2"], "a run was still going", "conv-123", 30.0)
    assert told.startswith("After the stop, a run of finn's was still going after 30 seconds, so the bridge could"
                           " not tell whether finn asked for another tool after tool call ids `call-1`, `call-2` were"
                           " decided: such a request may wait on Letta, which takes no new message in this thread's"
                           " conversation `conv-123` until it is decided."), told
    assert "the decision" not in told, told
