"""Record what a real Letta stores when its agent saves to memory with `request_heartbeat: true` before it answers
(the fake LLM of tests/real/llm.py does so for "please remember"): the send's answer and the agent's history after
it, in the reference's capture format. 0.11.7 stores the heartbeat as a `user_message` of packed JSON between the
tool's return and the answer, and lists it only in history.

    python -m tests.real.capture_heartbeat http://127.0.0.1:8784 0.11.7 http://127.0.0.1:8599/v1 reference/letta/0.11.7
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from tests.real.capture import Recorder, user
from tests.real.letta_setup import Setup

ASKED = "please remember I like tea"


def capture(base: str, version: str, llm: str, out: Path) -> None:
    setup = Setup(base, version, llm)
    rec = Recorder(base, version, out)
    agent = setup.agent("alice")
    body = {"messages": [{**user(ASKED), "otid": str(uuid.uuid4())}]}
    rec.save("agents-send-memory-heartbeat", rec.exchange("POST", f"/v1/agents/{agent}/messages", body),
             "the fake LLM calls memory_insert with request_heartbeat=true, then answers")
    rec.save("agents-history-memory-heartbeat",
             rec.exchange("GET", f"/v1/agents/{agent}/messages", params={"limit": 100}),
             "the agent's history after that send: what is stored between the user's message and the answer")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))
