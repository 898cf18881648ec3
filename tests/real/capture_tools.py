"""Record a token-streamed turn with two tool calls on a real Letta 0.16.8, one that succeeds and one that raises,
in the reference's capture format: how a tool call's fragments and its return arrive while tokens stream.

    python -m tests.real.capture_tools http://127.0.0.1:8783 http://127.0.0.1:8599/v1 reference/letta/0.16.8

Needs the fake LLM of tests/real/llm.py at the second argument ("use tool A ... use tool B" calls A, then B).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.real.capture import Recorder, user
from tests.real.letta_setup import Setup

SHOUT = '''def shout(message: str) -> str:
    """Shout a message back in upper case.

    Args:
        message (str): The text to shout.

    Returns:
        str: The shouted text.
    """
    return message.upper()
'''
EXPLODE = '''def explode(reason: str) -> str:
    """Always fail, for the bridge's captures.

    Args:
        reason (str): Why it fails.

    Returns:
        str: Never returns.
    """
    raise ValueError("the capture tool failed on purpose: " + reason)
'''


def shouting_agent(setup: Setup) -> str:
    """A new agent `finn` with the `shout` tool, which requires approval (as reference section 17's captures)."""
    finn = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-real"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{finn}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    return finn


def capture(base: str, llm: str, out: Path) -> None:
    setup = Setup(base, "0.16.8", llm)
    rec = Recorder(base, "0.16.8", out)
    agent = setup.agent("tia")
    for source in (SHOUT, EXPLODE):
        made = setup.http.post("/v1/tools/", json={"source_code": source, "tags": ["slack-bridge-capture-tools"]})
        made.raise_for_status()
        setup.http.patch(f"/v1/agents/{agent}/tools/attach/{made.json()['id']}").raise_for_status()
    body = {"messages": [user("please use tool shout, then use tool explode")], "stream_tokens": True}
    rec.save("agents-stream-tokens-two-tools",
             rec.exchange("POST", f"/v1/agents/{agent}/messages/stream", body, stream=True),
             "stream_tokens: the fake LLM calls shout (returns) then explode (raises ValueError), then replies; "
             "tool call arguments arrive from the model in two fragments each")
    conversation = setup.http.post("/v1/conversations/", json={"summary": "capture-tools"},
                                   params={"agent_id": agent}).json()["id"]
    body = {"messages": [user("please use tool shout, then use tool explode")], "stream_tokens": True,
            "streaming": True}
    rec.save("conversations-stream-tokens-two-tools",
             rec.exchange("POST", f"/v1/conversations/{conversation}/messages", body, stream=True),
             "the same on a conversation's route (how the bridge sends where threads are conversations)")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
