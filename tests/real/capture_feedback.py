"""Record feedback on a step on a real Letta 0.16.8, in the reference's capture format: an agent's reply (its
assistant message names the step that produced it), then `PATCH /v1/steps/{step_id}/feedback` positive, then
negative (a change of mind), then on a step id the server does not know.

    python -m tests.real.capture_feedback http://127.0.0.1:38783 http://127.0.0.1:38599/v1 reference/letta/0.16.8

Needs the fake LLM of tests/real/llm.py at the second argument.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.real.capture import Recorder, user
from tests.real.letta_setup import Setup

UNKNOWN_STEP = "step-00000000-0000-4000-8000-000000000000"


def capture(base: str, llm: str, out: Path) -> None:
    setup = Setup(base, "0.16.8", llm)
    rec = Recorder(base, "0.16.8", out, prefix="steps-feedback-")
    agent = setup.agent("fia")
    sent = rec.save("send", rec.exchange("POST", f"/v1/agents/{agent}/messages", {"messages": [user("hello")]}),
                    "an agent's reply: the assistant message's step_id names the step that produced it")
    step = next(m["step_id"] for m in sent["response"]["body"]["messages"] if m["message_type"] == "assistant_message")
    rec.save("positive", rec.exchange("PATCH", f"/v1/steps/{step}/feedback", {"feedback": "positive", "tags": []}),
             "feedback on the reply's step: the Step comes back with feedback set")
    rec.save("negative", rec.exchange("PATCH", f"/v1/steps/{step}/feedback", {"feedback": "negative", "tags": []}),
             "a change of mind on the same step: the latest feedback replaces the first")
    rec.save("unknown-step", rec.exchange("PATCH", f"/v1/steps/{UNKNOWN_STEP}/feedback",
                                          {"feedback": "positive", "tags": []}),
             "a step id the server does not know")


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
