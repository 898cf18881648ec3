"""The fake Slack's checks of streaming messages' chunks and task cards, strict as written in
reference/slack/web-api/chat.startStream.json ("chunks", "task_display_mode") and slack-sdk 3.48's
models/messages/chunk.py; each task's updates are recorded per stream so tests can see them.

- A chunk is `markdown_text {text}`, `task_update {id, title, status, details?, output?, sources?}`,
  `plan_update {title}` or `blocks {blocks}`; anything else, a missing or empty field, a status outside
  pending|in_progress|complete|error, or details/output over 256 characters is `invalid_chunks`.
- A task id is stable across updates: an update of a known id with another title, or one that moves a task back
  (pending after in_progress, anything after complete or error) is `invalid_chunks` too.
- `task_card` blocks (docs.slack.dev's task card block: task_id, title, status, details/output as one rich_text)
  keep tasks in a finished message; anything else in one is `invalid_blocks`.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("pending", "in_progress", "complete", "error")
TASK_KEYS = {"type", "id", "title", "status", "details", "output", "sources"}
TEXT_MAX = 256


def _rank(status: str) -> int:
    return min(STATUSES.index(status), 2)  # complete and error are both final


def _task_error(chunk: dict[str, Any], known: dict[str, list[dict[str, Any]]]) -> str | None:
    if set(chunk) - TASK_KEYS:
        return "invalid_chunks"
    task_id, title, status = chunk.get("id"), chunk.get("title"), chunk.get("status")
    if not isinstance(task_id, str) or not task_id or not isinstance(title, str) or not title:
        return "invalid_chunks"
    if status not in STATUSES:
        return "invalid_chunks"
    for field in ("details", "output"):
        if field in chunk and (not isinstance(chunk[field], str) or len(chunk[field]) > TEXT_MAX):
            return "invalid_chunks"
    before = known.get(task_id)
    if before:
        last = before[-1]
        final = last["status"] in ("complete", "error")
        if last["title"] != title or _rank(status) < _rank(last["status"]) or (final and status != last["status"]):
            return "invalid_chunks"
    return None


def check_chunks(chunks: Any, known: dict[str, list[dict[str, Any]]]) -> str | None:
    """None when the chunks may be streamed (their task updates then recorded in `known`), else Slack's error."""
    if chunks is None:
        return None
    if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
        return "invalid_chunks"
    updates: dict[str, list[dict[str, Any]]] = {k: list(v) for k, v in known.items()}
    for chunk in chunks:
        kind = chunk.get("type")
        if kind == "markdown_text" and isinstance(chunk.get("text"), str):
            continue
        if kind == "plan_update" and isinstance(chunk.get("title"), str) and chunk["title"]:
            continue
        if kind == "blocks" and isinstance(chunk.get("blocks"), list):
            continue
        if kind != "task_update":
            return "invalid_chunks"
        error = _task_error(chunk, updates)
        if error:
            return error
        updates.setdefault(chunk["id"], []).append(dict(chunk))
    known.update(updates)
    return None


def task_card_error(block: dict[str, Any]) -> str | None:
    allowed = {"type", "task_id", "title", "status", "details", "output", "sources", "block_id"}
    if set(block) - allowed or not block.get("task_id") or not block.get("title"):
        return "invalid_blocks"
    if block.get("status") not in STATUSES:
        return "invalid_blocks"
    for field in ("details", "output"):
        rich = block.get(field)
        if rich is None:
            continue
        if not isinstance(rich, dict) or rich.get("type") != "rich_text" or len(rich.get("elements") or []) != 1:
            return "invalid_blocks"
    return None
