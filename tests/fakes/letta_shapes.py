"""Wire shapes for the fake Letta server, built from real captures.

Every shape here comes from the capture files under ``reference/letta`` in this repository. They
are loaded once at import, and the builders copy key names, key order and nulls from them. The
goal is that a test passing against the fake also passes against a real server.
How a 0.11.7 server joins agent turns into one group response is in letta_groups.py.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.reference import LETTA

VERSIONS: tuple[str, ...] = ("0.11.7", "0.12.1", "0.16.4", "0.16.8")
MANAGER_TYPES: tuple[str, ...] = ("round_robin", "supervisor", "dynamic", "sleeptime")
CAPTURES_DIR = LETTA

# Where a version has no capture of a file, borrow from the closest captured version.
# 0.12.1 was only captured for setup and group sends, and it runs the same memgpt_v2 agent as 0.11.7.
_FALLBACK: dict[str, tuple[str, ...]] = {
    "0.11.7": ("0.11.7",),
    "0.12.1": ("0.12.1", "0.11.7"),
    "0.16.4": ("0.16.4", "0.16.8"),
    "0.16.8": ("0.16.8", "0.16.4"),
}
_NEEDED: tuple[str, ...] = (
    "steps-feedback-positive", "steps-feedback-unknown-step",
    "health", "health-no-trailing-slash", "auth-missing", "agents-get", "agents-send",
    "agents-history-alice", "error-unknown-route", "error-agent-get-malformed-id",
    "error-agent-get-unknown-wellformed", "error-agent-send-malformed-body",
    "error-group-get-malformed-id", "error-group-get-unknown-wellformed",
    "error-group-send-invalid-json", "error-group-send-malformed-body-bad-role",
    "error-group-send-wrong-method", "groups-send-round_robin", "groups-send-supervisor",
    "groups-send-dynamic-no-otid", "groups-history-round_robin", "llm500-agents-send",
    *(f"groups-get-{t}" for t in MANAGER_TYPES),
    "conversations-create", "conversations-create-missing-agent-id", "conversations-create-unknown-agent",
    "conversations-get-unknown", "conversations-get-malformed", "concurrent-redis-conversations-same-stream",
    "runs-active-during-send", "conversations-stream-resume-without-redis", "redis-conversations-stream-resume-idle",
    "agents-history-memory-heartbeat",
    "redis-conversations-stream-resume-unknown-otid", "agents-stream-tokens-two-tools",
    "approval-send", "approval-history-final", "approval-approve", "approval-approve-wrong-id",
    "approval-pending-new-message",
    "approval-conversation-pending-new-message", "approval-pending-new-message-stream", "approval-said-first-stream",
    # reference/letta/README.md section 22 (tests/real/capture_edges.py)
    "conversations-background-without-redis", "redis-conversations-cancel-unknown",
    "redis-conversations-stream-resume-unknown-run-id", "redis-conversations-default-send-without-agent-id",
    "agents-cancel-idle", "conversations-cancel-idle", "agents-cancel-during-stream",
)
UNKNOWN_AGENT_ID = "agent-00000000-0000-4000-8000-000000000000"
UNKNOWN_GROUP_ID = "group-00000000-0000-4000-8000-000000000000"
_UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
AGENT_ID_RE = rf"agent-{_UUID4}"  # the pattern 0.16.x enforces (see its 422 bodies)
GROUP_ID_RE = rf"group-{_UUID4}"


def _load_all() -> dict[tuple[str, str], dict[str, Any]]:
    """Read each capture the fake needs, so a missing reference dir fails at import, loudly."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for version in VERSIONS:
        for name in _NEEDED:
            path = CAPTURES_DIR / version / f"{name}.json"
            if path.exists():
                out[(version, name)] = json.loads(path.read_text())
    if not out:
        raise RuntimeError(f"no Letta captures under {CAPTURES_DIR}: the repository's reference/ folder is missing")
    return out


CAPTURES = _load_all()


def capture(version: str, name: str) -> dict[str, Any]:
    """A deep copy of one capture ({request, response}), borrowing from a close version if needed."""
    for v in _FALLBACK[version]:
        if (v, name) in CAPTURES:
            return copy.deepcopy(CAPTURES[(v, name)])
    raise KeyError(f"no capture {name!r} for Letta {version}")


def body(version: str, name: str) -> Any:
    """The captured response body (parsed JSON) of one capture."""
    return capture(version, name)["response"]["body"]


def body_422(version: str, name: str) -> Any:
    """A captured 422 body. 0.16.8 answered its group-send error cases with 405, so they come from 0.16.4."""
    for v in _FALLBACK[version]:
        exchange = CAPTURES.get((v, name))
        if exchange is not None and exchange["response"]["status"] == 422:
            return copy.deepcopy(exchange["response"]["body"])
    raise KeyError(f"no 422 capture {name!r} for Letta {version}")


def is_v16(version: str) -> bool:
    """0.16.x runs letta_v1_agent (no reasoning step) and answers validation errors with a string."""
    return version.startswith("0.16")


def extra_headers(version: str) -> dict[str, str]:
    """Headers the real server adds to every answer (0.16.8 sends ``vary: Origin``)."""
    return {k: v for k, v in capture(version, "health")["response"]["headers"] if k == "vary"}


def new_id(prefix: str) -> str:
    """Letta ids look like ``<prefix>-<uuid4>``."""
    return f"{prefix}-{uuid.uuid4()}"


def otid_from_id(message_id: str, index: int) -> str:
    """Server-made otid: the message uuid with its low 7 bits replaced by ``index`` (Letta's rule)."""
    value = (int(message_id.split("-", 1)[1].replace("-", ""), 16) & ~0x7F) | (index & 0x7F)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def wire_date(when: datetime | None = None) -> str:
    """Message ``date`` as Letta sends it: whole seconds, ``+00:00``."""
    return (when or datetime.now(UTC)).replace(microsecond=0).isoformat()


def alert_time(when: datetime) -> str:
    """The ``time`` inside the JSON text Letta wraps around forwarded messages."""
    return when.strftime("%Y-%m-%d %I:%M:%S %p UTC%z")


def joined_text(messages: list[dict[str, Any]]) -> str:
    """All text parts of all messages, joined with newlines: what the agent 'reads'."""
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(parts)


def to_int(value: str | None, default: int) -> int:
    """Query integers; anything unparsable falls back to the route's default."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


_MESSAGE_DEFAULTS: dict[str, Any] = {
    "name": None, "otid": None, "sender_id": None, "step_id": None, "is_err": None, "seq_id": None,
    "run_id": None, "source": "non_reasoner_model", "reasoning": "Replying to the user.",
    "signature": None, "status": "success", "stdout": None, "stderr": None,
}


class Shapes:
    """Builds messages, responses, agents and groups exactly as one Letta version shapes them."""

    def __init__(self, version: str) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown Letta version {version!r}; known: {VERSIONS}")
        self.version = version
        self.reasoning_style = not is_v16(version)  # memgpt_v2: reasoning + send_message per step
        self._send = body(version, "agents-send")
        self._agent = body(version, "agents-get")
        self._msg_keys: dict[str, list[str]] = {}
        sources = (
            self._send["messages"],
            body(version, "agents-history-alice"),
            body("0.11.7", "groups-send-supervisor")["messages"],
            body("0.11.7", "groups-history-round_robin"),
        )
        for msgs in sources:
            for m in msgs:
                self._msg_keys.setdefault(m["message_type"], list(m))

    def message(self, message_type: str, **values: Any) -> dict[str, Any]:
        """One message with the captured key order; keys the version lacks are dropped."""
        out: dict[str, Any] = {}
        for key in self._msg_keys[message_type]:
            if key in values:
                out[key] = values[key]
            elif key == "message_type":
                out[key] = message_type
            elif key == "date":
                out[key] = wire_date()
            else:
                out[key] = _MESSAGE_DEFAULTS.get(key)
        return out

    def turn(self, replies: list[str], *, name: str | None, step_id: str, run_id: str | None,
             date: str) -> tuple[list[dict[str, Any]], int]:
        """The messages of one agent turn and its step count (one step per reply, at least one)."""
        msgs: list[dict[str, Any]] = []
        items: list[str | None] = list(replies) or [None]
        for i, text in enumerate(items):
            sid = step_id if i == 0 else new_id("step")
            mid = new_id("message")
            common = {"id": mid, "date": date, "name": name, "step_id": sid, "run_id": run_id}
            idx = 0
            if self.reasoning_style:
                msgs.append(self.message("reasoning_message", otid=otid_from_id(mid, 0), **common))
                idx = 1
            if text is not None:
                msgs.append(self.message("assistant_message", otid=otid_from_id(mid, idx), content=text, **common))
        return msgs, len(items)

    def alert(self, name: str, content: str, step_id: str | None, otid: str | None = None,
              sender_id: str | None = None) -> dict[str, Any]:
        """The system_message Letta stores when one agent's words are forwarded to another (0.11.7)."""
        now = alert_time(datetime.now(UTC))
        wrapped = json.dumps({"type": "system_alert", "message": content, "time": now})
        return self.message("system_message", id=new_id("message"), name=name, otid=otid, sender_id=sender_id,
                            step_id=step_id, content=wrapped)

    def user_copy(self, text: str, otid: str | None, name: str | None, step_id: str, *,
                  wrapped: bool) -> dict[str, Any]:
        """A group member's copy of the user message; copies after the first are JSON-wrapped (0.11.7)."""
        content = text
        if wrapped:
            now = alert_time(datetime.now(UTC))
            content = json.dumps({"type": "user_message", "message": text, "time": now}, indent=2)
        return self.message("user_message", id=new_id("message"), name=name, otid=otid, step_id=step_id,
                            content=content)

    def usage(self, steps: int) -> dict[str, Any]:
        """usage_statistics: the fake LLM costs 7 completion + 11 prompt tokens per step, as captured."""
        computed = {
            "completion_tokens": 7 * steps, "prompt_tokens": 11 * steps, "total_tokens": 18 * steps,
            "step_count": steps, "steps_messages": None, "run_ids": None, "cached_input_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "context_tokens": 18,
        }
        return {k: computed.get(k, v) for k, v in self._send["usage"].items()}

    def response(self, messages: list[dict[str, Any]], steps: int) -> dict[str, Any]:
        """A LettaResponse with the version's top-level keys (0.16.8 adds logprobs/turns)."""
        out: dict[str, Any] = {}
        for key, value in self._send.items():
            if key == "messages":
                out[key] = messages
            elif key == "usage":
                out[key] = self.usage(steps)
            else:
                out[key] = copy.deepcopy(value)
        return out

    def system_prompt(self) -> str:
        """The system prompt text that 0.16.x history shows as the first system_message."""
        return str(self._agent.get("system", ""))

    def agent(self, agent_id: str, name: str, created: datetime, updated: datetime,
              message_ids: list[str]) -> dict[str, Any]:
        """An AgentState copied from that version's agents-get.json, with our id/name/times."""
        out: dict[str, Any] = copy.deepcopy(self._agent)
        if self.version == "0.11.7":  # naive timestamps; created_at without fraction
            c, u = created.replace(tzinfo=None), updated.replace(tzinfo=None)
            times = {"created_at": c.isoformat(timespec="seconds"), "updated_at": u.isoformat(timespec="microseconds")}
        else:
            fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
            times = {"created_at": created.strftime(fmt), "updated_at": updated.strftime(fmt)}
        out.update(id=agent_id, name=name, message_ids=message_ids, description=None, tags=[], **times)
        return out

    def group(self, group_id: str, manager_type: str, agent_ids: list[str], description: str,
              manager_agent_id: str | None, max_turns: int | None, termination_token: str | None) -> dict[str, Any]:
        """A Group copied from that version's groups-get-<type>.json, with our values."""
        kind = manager_type if manager_type in MANAGER_TYPES else "round_robin"
        out: dict[str, Any] = copy.deepcopy(body(self.version, f"groups-get-{kind}"))
        out.update(id=group_id, manager_type=manager_type, agent_ids=list(agent_ids), description=description,
                   manager_agent_id=manager_agent_id, termination_token=termination_token, max_turns=max_turns)
        return out


def page_messages(entries: list[dict[str, Any]], *, limit: int, before: str | None, after: str | None,
                  newest: bool) -> list[dict[str, Any]]:
    """History paging: cut at the cursors, keep the newest (or oldest) ``limit``, list oldest-first."""
    if limit <= 0:
        return []
    ids = [e["id"] for e in entries]
    lo = max(i for i, x in enumerate(ids) if x == after) + 1 if after in ids else 0
    hi = ids.index(before) if before in ids else len(entries)
    cand = entries[lo:hi]
    return cand[-limit:] if newest else cand[:limit]


def page_objects(items: list[dict[str, Any]], *, limit: int, before: str | None, after: str | None,
                 descending: bool) -> list[dict[str, Any]]:
    """List paging for agents/groups: order first, then cursors relative to that order."""
    seq = list(reversed(items)) if descending else list(items)
    ids = [x["id"] for x in seq]
    lo = ids.index(after) + 1 if after in ids else 0
    hi = ids.index(before) if before in ids else len(seq)
    cand = seq[lo:hi]
    if limit <= 0:
        return []
    return cand[-limit:] if before in ids and after not in ids else cand[:limit]
