"""The refusals of the fake Letta server, as the captures show a real one: the error bodies of an unknown or
malformed agent, group or conversation, and a send's body read as 0.11.7 to 0.16.8 read it (its 422s)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.letta_shapes import UNKNOWN_AGENT_ID, UNKNOWN_GROUP_ID, body, body_422, capture, is_v16


def _replace_id(detail: str, old: str, new: str) -> str:
    return detail.replace(old, new)


def agent_not_found(version: str, agent_id: str) -> dict[str, Any]:
    """404 body for an unknown agent id."""
    b: dict[str, Any] = body(version, "error-agent-get-unknown-wellformed")
    return {"detail": _replace_id(b["detail"], UNKNOWN_AGENT_ID, agent_id)}


def conversation_busy(run_id: str) -> dict[str, Any]:
    """The 409 a Redis-backed 0.16.8 gives a send to a conversation another run holds, naming that run."""
    b: dict[str, Any] = capture("0.16.8", "concurrent-redis-conversations-same-stream")["second"]["response"]["body"]
    return {"detail": b["detail"].replace(b["run_id"], run_id), "run_id": run_id}


def group_not_found(version: str, group_id: str) -> dict[str, Any]:
    """404 body for an unknown group id; the actor text is copied from that version's capture."""
    b: dict[str, Any] = body(version, "error-group-get-unknown-wellformed")
    return {"detail": _replace_id(b["detail"], UNKNOWN_GROUP_ID, group_id)}


def malformed_agent_id(version: str, agent_id: str) -> tuple[int, dict[str, Any]]:
    """0.11.7: 400 with a sentence; 0.16.x: 422 pattern mismatch with a string detail."""
    cap = capture(version, "error-agent-get-malformed-id")
    b = cap["response"]["body"]
    if isinstance(b.get("detail"), str) and "trace_id" in b:
        b["detail"] = b["detail"].replace(repr("not-an-agent-id"), repr(agent_id))
    else:
        b["detail"] = b["detail"].replace("not-an-agent-id", agent_id)
    return cap["response"]["status"], b


def malformed_group_id(version: str, group_id: str) -> tuple[int, dict[str, Any]]:
    """0.11.7: the plain 404 'Group not found'; 0.16.x: 422 pattern mismatch."""
    cap = capture(version, "error-group-get-malformed-id")
    b = cap["response"]["body"]
    if "trace_id" in b:
        b["detail"] = b["detail"].replace(repr("not-a-group-id"), repr(group_id))
        return cap["response"]["status"], b
    return 404, group_not_found(version, group_id)


def invalid_json(version: str, err: json.JSONDecodeError) -> dict[str, Any]:
    """422 for a body that is not JSON (FastAPI reports the decode position and message)."""
    b: dict[str, Any] = body_422(version, "error-group-send-invalid-json")
    if "trace_id" in b:
        old = "Expecting property name enclosed in double quotes"
        b["detail"] = b["detail"].replace("('body', 1)", f"('body', {err.pos})").replace(repr(old), repr(err.msg))
    else:
        b["detail"][0]["loc"] = ["body", err.pos]
        b["detail"][0]["ctx"]["error"] = err.msg
    return b


def missing_messages(version: str, payload: Any) -> dict[str, Any]:
    """422 for a send body without ``messages`` (0.16.x also accepts ``input``)."""
    b: dict[str, Any] = body_422(version, "error-agent-send-malformed-body")
    if "trace_id" in b:
        b["detail"] = b["detail"].replace("'input': {'msgs': []}", f"'input': {payload!r}")
    else:
        b["detail"][0]["input"] = payload
    return b


def bad_role(version: str, index: int, item: dict[str, Any]) -> dict[str, Any]:
    """422 for a message whose role is not user/system/assistant."""
    b: dict[str, Any] = body_422(version, "error-group-send-malformed-body-bad-role")
    role = item.get("role")
    if "trace_id" in b:
        d = b["detail"].replace("'input': 'wizard'", f"'input': {role!r}")
        b["detail"] = d.replace("('body', 'messages', 0,", f"('body', 'messages', {index},")
        return b
    for err in b["detail"]:
        err["loc"][2] = index
        if err["input"] == "wizard":
            err["input"] = role
        elif isinstance(err["input"], dict):
            err["input"] = {**item, "type": item.get("type", "message")}
    return b


def validation_error(version: str, loc: list[Any], msg: str, typ: str, value: Any) -> dict[str, Any]:
    """Any other 422, in the version's style: a JSON list (0.11.7) or a Python repr string (0.16.x)."""
    err = {"type": typ, "loc": loc, "msg": msg, "input": value}
    if is_v16(version):
        return {"trace_id": "", "detail": repr([{**err, "loc": tuple(loc)}])}
    return {"detail": [err]}


def _image_ok(part: dict[str, Any]) -> bool:
    source = part.get("source")
    return isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("media_type"), str) \
        and isinstance(source.get("data"), str)


def parse_send(version: str, raw: bytes) -> tuple[list[dict[str, Any]] | None, Any]:
    """Validate a send body the way FastAPI/pydantic would. Return (messages, None) or (None, the 422 body)."""
    try:
        payload = json.loads(raw) if raw else None
    except json.JSONDecodeError as exc:
        return None, invalid_json(version, exc)
    except ValueError:
        return None, validation_error(version, ["body"], "Invalid UTF-8", "json_invalid", None)
    if not isinstance(payload, dict) or ("messages" not in payload and not (is_v16(version) and "input" in payload)):
        return None, missing_messages(version, payload)
    msgs = payload.get("messages")
    if msgs is None and is_v16(version):  # 0.16.x: {"input": "text"} is shorthand for one user message
        msgs = [{"role": "user", "content": payload.get("input")}]
    if not isinstance(msgs, list):
        return None, validation_error(version, ["body", "messages"], "Input should be a valid list", "list_type", msgs)
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return None, validation_error(version, ["body", "messages", i], "Input should be a valid dictionary",
                                          "dict_type", m)
        if m.get("role") not in ("user", "system", "assistant"):
            return None, bad_role(version, i, m)
        content = m.get("content")
        ok = isinstance(content, str) or (isinstance(content, list) and all(
            isinstance(p, dict) and (p.get("type") != "text" or isinstance(p.get("text"), str)) for p in content))
        if ok and isinstance(content, list) and not all(_image_ok(p) for p in content if p.get("type") == "image"):
            # reference/letta/README.md §18: an image part without its media_type is refused (the data is not read)
            if version == "0.16.8":
                return None, capture(version, "image-send-missing-media-type")["response"]["body"]
            return None, validation_error(version, ["body", "messages", i, "content"], "Field required", "missing",
                                          content)
        if not ok:
            typ, msg = ("missing", "Field required") if content is None else \
                ("string_type", "Input should be a valid string")
            return None, validation_error(version, ["body", "messages", i, "content"], msg, typ, content)
    return msgs, None
