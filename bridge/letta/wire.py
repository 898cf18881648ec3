"""What the bridge puts on Letta's wire besides routes: the id shapes it accepts, a user message, and the
decisions on tool calls an agent asked about."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bridge.domain import Decision, Image

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
AGENT_ID = re.compile(rf"agent-{_UUID}")
GROUP_ID = re.compile(rf"group-{_UUID}")
APP_SERVER_AGENT_ID = re.compile(rf"agent-local-{_UUID}")  # the Letta App Server's (capture ws-agent-create-*)


def is_agent_id(value: str, app_server: bool = False) -> bool:
    """An agent id of the server's kind: agent-<uuid> on REST servers and Cloud, agent-local-<uuid> on an App
    Server."""
    return (APP_SERVER_AGENT_ID if app_server else AGENT_ID).fullmatch(value) is not None


def is_app_server_agent_id(value: str) -> bool:
    return APP_SERVER_AGENT_ID.fullmatch(value) is not None


def is_group_id(value: str) -> bool:
    return GROUP_ID.fullmatch(value) is not None


def speaker_name(display_name: str | None) -> str | None:
    """LLM providers accept only letters, digits, `_` and `-` in a message's name (at most 64)."""
    if not display_name:
        return None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", display_name).strip("_")[:64]
    return name or None


def image_part(image: Image) -> dict[str, Any]:
    """An image as a user content part: the same shape on REST servers (reference/letta/README.md §18) and the App
    Server (app-server/README.md §18)."""
    return {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}


def user_message(text: str, otid: str, sender: str | None, images: Sequence[Image] = ()) -> dict[str, Any]:
    parts = [{"type": "text", "text": text}, *(image_part(i) for i in images)]
    message: dict[str, Any] = {"role": "user", "content": parts, "otid": otid}
    name = speaker_name(sender)
    if name:
        message["name"] = name
    return message


def approval_message(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The decisions on an agent's pending tool calls, one `approvals` entry each; a denial carries its reason
    (reference/letta/README.md section 17: approval-approve.json, approval-conversation-deny-stream.json)."""
    approvals: list[dict[str, Any]] = []
    for d in decisions:
        entry: dict[str, Any] = {"type": "approval", "approve": d.approve, "tool_call_id": d.tool_call_id}
        if not d.approve and d.reason:
            entry["reason"] = d.reason
        approvals.append(entry)
    return {"type": "approval", "approvals": approvals}
