"""Record, on a real Letta 0.16.8 with Redis, a background send whose agent stops to ask for a tool's approval, and
what re-attaching to that run by its otid sends: the whole run again (its ping, the agent's words, the
`approval_request_message`, `stop_reason: requires_approval`), or with `starting_after` only what followed
(reference/letta/README.md sections 14 and 17).

    python -m tests.real.capture_approval_resume http://127.0.0.1:8783 http://127.0.0.1:8599/v1 \
        reference/letta/0.16.8

Needs the fake LLM of tests/real/llm.py at the second argument, and a server started with Redis.
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
    rec = Recorder(base, "0.16.8", out, "redis-")
    agent = setup.agent("finn")
    made = setup.http.post("/v1/tools/", json={"source_code": SHOUT, "tags": ["slack-bridge-capture-tools"]})
    made.raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/attach/{made.json()['id']}").raise_for_status()
    setup.http.patch(f"/v1/agents/{agent}/tools/approval/shout", json={"requires_approval": True}).raise_for_status()
    message = user("[say first] please use tool shout")
    body: dict[str, Any] = {"messages": [message], "streaming": True, "background": True, "agent_id": agent}
    rec.save("approval-background-send-stream",
             rec.exchange("POST", "/v1/conversations/default/messages", body, stream=True),
             "a background send to the agent's own thread; the agent says words and asks to run shout")
    resume = {"otid": message["otid"], "agent_id": agent}
    rec.save("approval-stream-resume-by-otid",
             rec.exchange("POST", "/v1/conversations/default/stream", resume, stream=True),
             "re-attached by the send's otid after its run stopped for approval: the whole run again")
    rec.save("approval-stream-resume-starting-after",
             rec.exchange("POST", "/v1/conversations/default/stream", {**resume, "starting_after": 1}, stream=True),
             "the same with starting_after=1 (the ping's seq_id): the words, the request, its stop_reason")
    rec.save("approval-history-after-background",
             rec.exchange("GET", "/v1/conversations/default/messages", None, params={"agent_id": agent}),
             "history while the request waits: the user message, the words, the approval request")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
