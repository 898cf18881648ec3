"""A Stop while a card waits on a real Letta 0.16.8, the agent's model calling its tools in turn ("use tool shout use
tool shout", tests/real/llm.py): it answers the stop's denial by asking for its next tool, which 0.16.8 keeps
pending. The bridge denies that one too, so the thread's next message is answered; judged by the agent's history
after the mention: two approval responses, both denials with the stop's reason, and no approval request left
without its tool return."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.e2e.approval_rig import ASKER, open_rig
from tests.real.capture_tools import shouting_agent
from tests.real.conftest import Stage

ENDED = {"done", "partial", "failed", "stopped"}


def _after(history: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """The messages stored after the one user message holding `marker`."""
    users = [i for i, m in enumerate(history) if m.get("message_type") == "user_message" and marker in str(
        m.get("content"))]
    assert len(users) == 1, f"the mention reached the agent {len(users)} times"
    return history[users[0] + 1 :]


def _calls(message: dict[str, Any]) -> set[str]:
    """The tool call ids an approval request asks about."""
    return {c["tool_call_id"] for c in message.get("tool_calls") or [message.get("tool_call") or {}] if c}


def test_a_request_asked_in_answer_to_a_stops_denial_is_denied_too_on_real_0_16_8(
    stage: Stage, tmp_path: Path
) -> None:
    """Both requests denied with "the turn was stopped", none left waiting; one card; the next message answered."""
    setup = stage.servers["0.16.8"].setup
    finn = shouting_agent(setup)
    marker = f"please use tool shout use tool shout {uuid.uuid4().hex[:8]}"
    with open_rig(tmp_path, setup, stage.servers["0.16.8"].url, finn) as rig:
        root = rig.mention(marker)
        rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 120)
        rig.bridge.mention("stop", rig.channel, user=ASKER, thread_ts=root["ts"])
        rig.slack.wait_for(lambda: rig.status(root["ts"]) == "stopped", 120)
        later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
        rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 120)
        assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])
        assert len(rig.cards(root["ts"])) == 1
    after = _after(setup.history(finn), marker)
    print(f"0.16.8 history after the mention: {[m['message_type'] for m in after]}")
    responses = [a for m in after if m["message_type"] == "approval_response_message" for a in m.get("approvals") or []]
    assert [(a.get("approve"), a.get("reason")) for a in responses] == [(False, "the turn was stopped")] * 2, responses
    returned = {m.get("tool_call_id") for m in after if m["message_type"] == "tool_return_message"}
    asked = [_calls(m) for m in after if m["message_type"] == "approval_request_message"]
    assert len(asked) == 2 and all(ids <= returned for ids in asked), (asked, returned)
