"""Record a tool approval while tokens stream on a real Letta 0.16.8, in the reference's capture format: how the
`approval_request_message` arrives in fragments (reference/letta/README.md section 17), and the decision's answer.

    python -m tests.real.capture_approval_tokens http://127.0.0.1:8783 http://127.0.0.1:8599/v1 reference/letta/0.16.8

Needs the fake LLM of tests/real/llm.py at the second argument ("use tool shout" calls shout, its arguments in two
fragments).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.real.capture import Recorder, user
from tests.real.capture_tools import SHOUT
from tests.real.letta_setup import Setup


def _call_id(record: dict[str, Any]) -> str:
    events = record["response"]["events"]
    return next(e["data"]["tool_call"]["tool_call_id"] for e in events
                if isinstance(e["data"], dict) and e["data"].get("message_type") == "approval_request_message")


def capture(base: str, llm: str, out: Path) -> None:
    setup = Setup(base, "0.16.8", llm)
    rec = Recorder(base, "0.16.8", out)
    agent = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-capture-tools"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    body: dict[str, Any] = {"messages": [user("please use tool shout")], "stream_tokens": True}
    asked = rec.save("approval-stream-tokens",
                     rec.exchange("POST", f"/v1/agents/{agent}/messages/stream", body, stream=True),
                     "stream_tokens: the approval request arrives in fragments (the model's arguments came in two)")
    approve = {"type": "approval", "approve": True, "tool_call_id": _call_id(asked)}
    decision = {"type": "approval", "approvals": [approve]}
    rec.save("approval-approve-stream-tokens",
             rec.exchange("POST", f"/v1/agents/{agent}/messages/stream",
                          {"messages": [decision], "stream_tokens": True}, stream=True),
             "the decision on the fragmented request, its tool_call_id read from the fragments")
    conversation = setup.http.post("/v1/conversations/", json={"summary": "capture-approval-tokens"},
                                   params={"agent_id": agent}).json()["id"]
    body = {"messages": [user("conv: please use tool shout")], "stream_tokens": True, "streaming": True}
    rec.save("approval-conversation-send-stream-tokens",
             rec.exchange("POST", f"/v1/conversations/{conversation}/messages", body, stream=True),
             "the same on a conversation's route (how the bridge sends where threads are conversations)")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
