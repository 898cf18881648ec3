"""Record what a real Letta server does while a step is running, in the reference's capture format
(reference/letta/README.md, "File format"), for the facts the fake Letta plays.

    python -m tests.real.capture 0.11.7 http://127.0.0.1:8784 http://127.0.0.1:8599/v1 reference/letta/0.11.7
    python -m tests.real.capture 0.16.8 http://127.0.0.1:8783 http://127.0.0.1:8599/v1 reference/letta/0.16.8 [redis]

Needs the fake LLM of tests/real/llm.py at the third argument (its "[slow N]" marker makes a step take N seconds).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.real.letta_setup import Setup


class Recorder:
    def __init__(self, base_url: str, version: str, out: Path, prefix: str = "") -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120)
        self.version = version
        self.out = out
        self.prefix = prefix

    def exchange(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                 stream: bool = False) -> dict[str, Any]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        request = self.http.build_request(method, path, json=body, params=params, headers=headers)
        record: dict[str, Any] = {"request": {"method": method, "path": str(request.url.raw_path.decode()),
                                              "headers": headers, "body": body}}
        try:
            answer = self.http.send(request)
        except httpx.HTTPError as exc:
            record["client_error"] = f"{type(exc).__name__}: {exc}"
            return record
        response: dict[str, Any] = {"status": answer.status_code, "reason": answer.reason_phrase,
                                    "headers": [list(h) for h in answer.headers.items()]}
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            response["body_raw"] = answer.text
            response["events"] = [{"data": json.loads(line[5:]) if line[5:].strip() != "[DONE]" else "[DONE]"}
                                   for line in answer.text.splitlines() if line.startswith("data:")]
        else:
            try:
                response["body"] = answer.json()
            except ValueError:
                response["body_raw"] = answer.text
        record["response"] = response
        record["elapsed_s"] = round(time.monotonic() - started, 3)
        return record

    def save(self, name: str, record: dict[str, Any], note: str) -> dict[str, Any]:
        full = {"letta_version": self.version, "captured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "note": note, **record}
        path = self.out / f"{self.prefix}{name}.json"
        path.write_text(json.dumps(full, indent=1, ensure_ascii=False) + "\n")
        print("wrote", path, record.get("response", {}).get("status"))
        return full


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "otid": str(uuid.uuid4()), "name": "maria"}


def in_background(fn: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def capture(version: str, base: str, llm: str, out: Path, redis: bool) -> None:
    setup = Setup(base, version, llm)
    rec = Recorder(base, version, out, "redis-" if redis else "")
    slow = "[slow 6]"
    note = ("fake LLM (tests/real/llm.py) takes 6 s per completion; the send started {when}s before this request"
            + ("; server WITH Redis" if redis else ""))
    v16 = version.startswith("0.16")

    def active(agent_id: str, conversation: str | None = None) -> dict[str, Any]:
        if v16:
            params: dict[str, Any] = {"agent_id": agent_id, "active": "true"}
            if conversation:
                params["conversation_id"] = conversation
            return rec.exchange("GET", "/v1/runs/", params=params)
        return rec.exchange("GET", "/v1/runs/active", params={"agent_ids": agent_id})

    # 1. a direct agent send: history and active runs while the step runs, then after it ended
    ivy = setup.agent("ivy")
    message = user(f"visible when? {slow}")
    worker = in_background(rec.exchange, "POST", f"/v1/agents/{ivy}/messages", {"messages": [message]})
    time.sleep(3)
    if not redis:
        rec.save("visible-agents-history-during-send", rec.exchange("GET", f"/v1/agents/{ivy}/messages",
                                                                    params={"limit": 10}), note.format(when=3))
    rec.save("runs-active-during-send", active(ivy), note.format(when=3))
    worker.join()
    if not redis:
        rec.save("visible-agents-history-after-send", rec.exchange("GET", f"/v1/agents/{ivy}/messages",
                                                                   params={"limit": 10}), "after the send answered")
    rec.save("runs-active-after-send", active(ivy), "after the send answered")

    if not v16:
        # 2. a group send: does it list a run? when do the members' histories show the user message?
        names = [setup.agent(n) for n in ("jay", "kit")]
        group = setup.group(names, "round_robin")
        message = user(f"group visible when? {slow}")
        worker = in_background(rec.exchange, "POST", f"/v1/groups/{group}/messages", {"messages": [message]})
        time.sleep(3)
        rec.save("runs-active-during-group-send", rec.exchange("GET", "/v1/runs/active",
                                                               params={"agent_ids": names}), note.format(when=3))
        rec.save("visible-groups-member-history-during-send",
                 rec.exchange("GET", f"/v1/agents/{names[0]}/messages", params={"limit": 10}), note.format(when=3))
        time.sleep(6)
        rec.save("visible-groups-member-history-during-second-member",
                 rec.exchange("GET", f"/v1/agents/{names[0]}/messages", params={"limit": 10}),
                 note.format(when=9) + "; the first member has answered, the second is in its step")
        worker.join()
        # 3. a direct send to a supervisor's manager runs its whole group (0.11.7 loads the manager's group)
        workers = [setup.agent(n) for n in ("lou", "max")]
        manager = setup.agent("ned")
        setup.group(workers, "supervisor", manager)
        rec.save("agents-send-supervisor-manager",
                 rec.exchange("POST", f"/v1/agents/{manager}/messages", {"messages": [user("manager, just you")]}),
                 "a direct send to the manager of a supervisor group (agent route)")
        rec.save("agents-stream-supervisor-manager",
                 rec.exchange("POST", f"/v1/agents/{manager}/messages/stream",
                              {"messages": [user("manager, just you, streamed")]}, stream=True),
                 "a direct streamed send to the manager of a supervisor group")
        return

    # 4. 0.16.8: a conversation send and the default thread (agent-direct mode)
    conv = rec.exchange("POST", "/v1/conversations/", {"summary": "capture"}, params={"agent_id": ivy})["response"]
    conv_id = conv["body"]["id"]
    message = user(f"conversation visible when? {slow}")
    worker = in_background(rec.exchange, "POST", f"/v1/conversations/{conv_id}/messages",
                           {"messages": [message], "streaming": False})
    time.sleep(3)
    if not redis:
        rec.save("visible-conversations-history-during-send",
                 rec.exchange("GET", f"/v1/conversations/{conv_id}/messages", params={"limit": 10, "order": "desc"}),
                 note.format(when=3))
    rec.save("runs-active-conversation-during-send", active(ivy, conv_id), note.format(when=3))
    worker.join()
    message = user(f"default visible when? {slow}")
    body: dict[str, Any] = {"messages": [message], "agent_id": ivy, "streaming": False}
    worker = in_background(rec.exchange, "POST", "/v1/conversations/default/messages", body)
    time.sleep(3)
    rec.save("runs-active-default-during-send", active(ivy), note.format(when=3))
    if not redis:
        rec.save("visible-conversations-default-history-during-send",
                 rec.exchange("GET", "/v1/conversations/default/messages",
                              params={"agent_id": ivy, "limit": 10, "order": "desc"}), note.format(when=3))
    worker.join()
    if not redis:
        rec.save("conversations-default-send", rec.exchange(
            "POST", "/v1/conversations/default/messages",
            {"messages": [user("default thread")], "agent_id": ivy, "streaming": False}),
            "agent-direct mode without Redis")
        rec.save("conversations-stream-resume-without-redis",
                 rec.exchange("POST", f"/v1/conversations/{conv_id}/stream", {}, stream=True),
                 "the resume route on a server without Redis")
    else:
        rec.save("conversations-stream-resume-unknown-otid",
                 rec.exchange("POST", f"/v1/conversations/{conv_id}/stream", {"otid": str(uuid.uuid4())},
                              stream=True), "resume by an otid no send ever carried")
        message = user(f"default background {slow}")
        body = {"messages": [message], "agent_id": ivy, "streaming": True, "background": True}
        worker = in_background(rec.exchange, "POST", "/v1/conversations/default/messages", body, stream=True)
        time.sleep(3)
        rec.save("conversations-default-stream-resume-by-otid",
                 rec.exchange("POST", "/v1/conversations/default/stream",
                              {"otid": message["otid"], "agent_id": ivy}, stream=True),
                 note.format(when=3) + "; resume the default thread's background run by its otid")
        worker.join()


if __name__ == "__main__":
    capture(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "redis")
