"""The fake App Server's reading of an input's content parts, as the real 0.34.12 did
(reference/letta/app-server/README.md §18): text parts joined, image parts kept as sent when the server could
decode them (PNG, JPEG, GIF, WebP bytes), and an undecodable one failing the whole turn unless
`image_failure_mode` is "drop"."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tests.reference import APP_SERVER, load

_BAD = [f["json"] for f in load(APP_SERVER / "ws-image-bad-data.json")["frames"] if f["dir"] == "received"]
FAILED_DELTA = next(f for f in _BAD if f.get("type") == "stream_delta" and f["delta"]["message_type"] == "loop_error")
FAILED = next(f for f in _BAD if f.get("type") == "turn_finished")
MODES = (None, "strict", "drop")


def _decodable(part: dict[str, Any]) -> bool:
    source = part.get("source") or {}
    if source.get("type") != "base64" or not source.get("media_type"):
        return False
    try:
        data = base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return False
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    )


def read_content(content: Any, mode: str | None) -> tuple[str, list[dict[str, Any]], bool]:
    """(text, image parts kept, whether the turn fails before any model call)."""
    if not isinstance(content, list):
        return str(content or ""), [], False
    text = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    images: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "image":
            continue
        if _decodable(part):
            images.append(part)
        elif mode != "drop":
            return text, [], True
    return text, images, False
