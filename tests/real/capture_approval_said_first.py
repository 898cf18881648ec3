"""Record, on a real Letta 0.16.8, an agent that says something and asks to run a tool in the same model answer: the
words come as an `assistant_message` before the `approval_request_message` of the same send, and history keeps them
(reference/letta/README.md section 17).

    python -m tests.real.capture_approval_said_first http://127.0.0.1:8783 http://127.0.0.1:8599/v1 \
        reference/letta/0.16.8

Needs the fake LLM of tests/real/llm.py at the second argument ("[say first]": content beside the tool call).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.real.capture import Recorder, user
from tests.real.capture_tools import SHOUT
from tests.real.letta_setup import Setup


def capture(base: str, llm: str, out: Path) -> None:
    setup = Setup(base, "0.16.8", llm)
    rec = Recorder(base, "0.16.8", out)
    agent = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-capture-tools"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    conversation = setup.http.post("/v1/conversations/", json={"summary": "capture-approval-said-first"},
                                   params={"agent_id": agent}).json()["id"]
    body: dict[str, Any] = {"messages": [user("[say first] please use tool shout")], "streaming": True}
    rec.save("approval-said-first-stream",
             rec.exchange("POST", f"/v1/conversations/{conversation}/messages", body, stream=True),
             "words and a tool call in one model answer: an assistant_message, then the approval request")
    rec.save("approval-said-first-history",
             rec.exchange("GET", f"/v1/conversations/{conversation}/messages", None, params={"agent_id": agent}),
             "history while the request waits: the words are kept before the approval request")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
