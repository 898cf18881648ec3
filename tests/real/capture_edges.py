"""Record what a real Letta server answers at the edges the fake Letta once played more kindly than real Letta
(reference/letta/README.md section 22), in the reference's capture format.

    python -m tests.real.capture_edges 0.16.8 http://127.0.0.1:8783 http://127.0.0.1:8599/v1 reference/letta/0.16.8 \
        redis
    python -m tests.real.capture_edges 0.16.8 http://127.0.0.1:8784 http://127.0.0.1:8599/v1 reference/letta/0.16.8
    python -m tests.real.capture_edges 0.11.7 http://127.0.0.1:8785 http://127.0.0.1:8599/v1 reference/letta/0.11.7

Needs the fake LLM of tests/real/llm.py at the third argument ("[slow N]" makes a step take N seconds).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.real.capture import Recorder, in_background, user
from tests.real.letta_setup import Setup

UNKNOWN_CONVERSATION = "conv-00000000-0000-4000-8000-000000000000"
UNKNOWN_RUN = "run-00000000-0000-4000-8000-000000000000"


def _v117(setup: Setup, rec: Recorder) -> None:
    """0.11.7 has the agent cancel route: `{}` when idle; during a stream it names the run, which runs on."""
    eve = setup.agent("eve")
    rec.save("agents-cancel-idle", rec.exchange("POST", f"/v1/agents/{eve}/messages/cancel"), "nothing running")
    out: dict[str, Any] = {}
    body = {"messages": [user("cancel me [slow 5]")]}
    worker = in_background(lambda: out.update(r=rec.exchange("POST", f"/v1/agents/{eve}/messages/stream", body,
                                                              stream=True)))
    time.sleep(2)
    rec.save("agents-cancel-during-stream", rec.exchange("POST", f"/v1/agents/{eve}/messages/cancel"),
             "fake LLM takes 5 s; the stream started 2 s before this cancel")
    worker.join()
    rec.save("agents-stream-cancelled", out["r"], "the stream the cancel named (agents-cancel-during-stream)")


def _without_redis(rec: Recorder, eve: str, conv: str) -> None:
    message = user("background without redis")
    rec.save("conversations-background-without-redis",
             rec.exchange("POST", f"/v1/conversations/{conv}/messages", {"messages": [message], "background": True},
                          stream=True), "background: true on a server without Redis")
    rec.save("conversations-history-after-background-without-redis",
             rec.exchange("GET", f"/v1/conversations/{conv}/messages", params={"limit": 10, "order": "desc"}),
             "the conversation's history right after the refused background send: its otid is not stored")
    rec.save("conversations-default-background-without-redis",
             rec.exchange("POST", "/v1/conversations/default/messages",
                          {"messages": [user("default background without redis")], "agent_id": eve,
                           "background": True}, stream=True), "the default thread, background, without Redis")


def _with_redis(rec: Recorder, eve: str, conv: str) -> None:
    rec.save("conversations-cancel-unknown", rec.exchange("POST", f"/v1/conversations/{UNKNOWN_CONVERSATION}/cancel"),
             "cancel on a conversation id that does not exist")
    rec.save("conversations-stream-resume-unknown-run-id",
             rec.exchange("POST", f"/v1/conversations/{conv}/stream", {"run_id": UNKNOWN_RUN}),
             "resume by a run id no run has")
    rec.save("conversations-default-send-without-agent-id",
             rec.exchange("POST", "/v1/conversations/default/messages", {"messages": [user("no agent")]}),
             "the default thread without agent_id")
    message = user("background once")
    body = {"messages": [message], "background": True}
    rec.save("conversations-background-send-2", rec.exchange("POST", f"/v1/conversations/{conv}/messages", body,
                                                             stream=True), "background send, run to its end")
    rec.save("conversations-same-otid-background-after-finish",
             rec.exchange("POST", f"/v1/conversations/{conv}/messages", body, stream=True),
             "the same body (same otid) sent again with background=true after the first run finished")
    rec.save("conversations-history-after-same-otid-background",
             rec.exchange("GET", f"/v1/conversations/{conv}/messages", params={"limit": 20, "order": "desc"}),
             "the history after both: one user message with that otid, one reply")
    out: dict[str, Any] = {}
    body = {"messages": [user("background cancelled [slow 6]")], "background": True}
    worker = in_background(lambda: out.update(r=rec.exchange("POST", f"/v1/conversations/{conv}/messages", body,
                                                              stream=True)))
    time.sleep(2)
    rec.save("agents-cancel-during-background", rec.exchange("POST", f"/v1/agents/{eve}/messages/cancel"),
             "fake LLM takes 6 s; a background conversation send started 2 s before this agent cancel")
    worker.join()
    rec.save("conversations-background-cancelled", out["r"], "the background stream the agent cancel named")
    rec.save("conversations-send-nonstream-before-cancel",
             rec.exchange("POST", f"/v1/conversations/{conv}/messages",
                          {"messages": [user("plain send")], "streaming": False}), "a non-streamed conversation send")
    rec.save("agents-cancel-after-nonstream-conversation-send",
             rec.exchange("POST", f"/v1/agents/{eve}/messages/cancel"),
             "after that send answered: its run is still listed `created` (section 19), and the cancel names it")


def capture(version: str, base: str, llm: str, out: Path, redis: bool) -> None:
    setup = Setup(base, version, llm)
    rec = Recorder(base, version, out, "redis-" if redis else "")
    if version.startswith("0.11"):
        _v117(setup, rec)
        return
    eve = setup.agent(f"eve{uuid.uuid4().hex[:4]}")
    conv = rec.http.post("/v1/conversations/", params={"agent_id": eve}, json={}).json()["id"]
    (_with_redis if redis else _without_redis)(rec, eve, conv)


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "redis")
