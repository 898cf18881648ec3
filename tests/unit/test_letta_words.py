"""What a Letta failure says to people (`explain`, in Slack) and to the operator (`for_operator`), for the failures
whose remedy depends on where the bridge stands: an agent or group Letta no longer knows, a key Letta refuses.

The 404 details are Letta's own words as captured (reference/letta: 0.16.8's agent and group lookups, 0.11.7's, the
App Server's `Agent agent-local-… not found`), and the conversation and run lookups that are no target of a binding.
"""

from __future__ import annotations

import pytest

from bridge.letta.errors import Kind, LettaError

GONE = [
    "Agent with ID agent-00000000-0000-4000-8000-000000000000 not found",  # 0.16.8
    "Group not found with id='['group-00000000-0000-4000-8000-000000000000']', access level in ['read'] for actor=…",
    "Agent not found",  # 0.11.7
    "Agent agent-local-00000000-0000-0000-0000-000000000000 not found",  # the App Server
]
NOT_A_TARGET = [
    "Conversation not found with id='['conv-00000000-0000-4000-8000-000000000000']', access level in ['read']",
    "Conversation not found: local-conv-999999",  # the App Server's, as appserver/turn.py words it
    "Not Found",  # a run or an otid Redis no longer maps
    "",
]


@pytest.mark.parametrize("detail", GONE)
def test_an_agent_or_group_letta_no_longer_knows_is_a_target_gone(detail: str) -> None:
    error = LettaError(Kind.NOT_FOUND, detail, status=404)
    assert error.target_gone
    said = error.explain("alice")
    assert said.startswith("Letta does not know alice") and "deleted" in said
    # The Letta side names no command: the turn adds the Slack one, worded for who may use it (turns.py).
    assert "python -m bridge" not in said and "connect" not in said


@pytest.mark.parametrize("detail", NOT_A_TARGET)
def test_a_404_about_something_else_is_no_reason_to_connect_the_channel_again(detail: str) -> None:
    assert not LettaError(Kind.NOT_FOUND, detail, status=404).target_gone
    assert not LettaError(Kind.INVALID, GONE[0], status=422).target_gone
