"""The fake Slack's reference answers (reference/slack/web-api/*.json, loaded once) and the pure helpers its
Web API methods share: reading form- or JSON-encoded arguments, ts order, the blocks and chunks Slack refuses."""

from __future__ import annotations

import copy
import json
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tests.fakes.slack_stream import task_card_error
from tests.reference import SLACK

CAPTURES_DIR = SLACK
JSON_CT = "application/json; charset=utf-8"
RESPONSE_URL_MAX_USES = 5


def _load_reference(root: Path) -> dict[str, dict[str, Any]]:
    """method -> {case -> {status, headers, body}} from web-api/*.json (fail loudly if missing)."""
    folder = root / "web-api"
    if not folder.is_dir():
        raise FileNotFoundError(f"Slack reference not found at {folder}: the repository's reference/ folder is missing")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        out[data.get("method", path.stem)] = data["responses"]
    return out


REFERENCE = _load_reference(CAPTURES_DIR)
DEFAULT_SCOPES: str = REFERENCE["auth.test"]["ok"]["headers"]["x-oauth-scopes"]


def ref_body(method: str, case: str) -> dict[str, Any]:
    """Deep copy of a reference response body (so tests can never mutate the templates)."""
    return copy.deepcopy(REFERENCE[method][case]["body"])


def jsonish(value: Any) -> Any:
    """Form-encoded calls carry blocks/chunks as JSON strings; JSON calls carry real lists."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def loads_dict(raw: bytes | str) -> dict[str, Any] | None:
    """Parse a JSON object; None for anything else (bad JSON, arrays, empty bodies)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def ts_key(ts: str) -> Decimal:
    try:
        return Decimal(ts)
    except (InvalidOperation, TypeError):
        return Decimal(0)


def rich_text(text: str) -> list[dict[str, Any]]:
    """The rich_text block Slack derives from plain ``text``."""
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}]


def chunk_text(args: dict[str, Any]) -> str | None:
    """Text of ``markdown_text`` plus markdown_text chunks; None when chunks are malformed."""
    text = str(args.get("markdown_text") or "")
    chunks = jsonish(args.get("chunks"))
    if chunks is None:
        return text
    if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
        return None
    return text + "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")


def blocks_error(blocks: Any) -> str | None:
    """Slack's limits for the blocks the bridge sends (reference/slack/limits.md, docs.slack.dev's context actions
    block and feedback buttons element): None when they may be posted, else the error Slack answers."""
    if not isinstance(blocks, list):
        return None
    if len(blocks) > 50:  # blocks per message (reference/slack/limits.md)
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section" and len(str((block.get("text") or {}).get("text", ""))) > 3000:
            return "invalid_blocks"
        if kind == "task_card" and task_card_error(block):
            return "invalid_blocks"
        if kind != "context_actions":
            continue
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
            return "invalid_blocks"
        for element in elements:
            if element.get("type") not in ("feedback_buttons", "icon_button"):
                return "invalid_blocks"
            if element.get("type") != "feedback_buttons":
                continue
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                if not isinstance(button, dict) or (button.get("text") or {}).get("type") != "plain_text":
                    return "invalid_blocks"
                if len(button["text"].get("text", "")) > 75 or not 0 < len(str(button.get("value", ""))) <= 2000:
                    return "invalid_blocks"
    return None
