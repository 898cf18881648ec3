"""Paths to the captured wire data the quick suite reads: ``reference/`` in this repository (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "reference"
LETTA = ROOT / "letta"
SLACK = ROOT / "slack"
APP_SERVER = LETTA / "app-server"  # the Letta App Server (WebSocket) captures, a protocol of its own


def letta_captures() -> list[Path]:
    """The REST servers' captures (one folder per version); the App Server's are `app_server_captures`."""
    return sorted(p for p in LETTA.glob("*/*.json") if p.parent != APP_SERVER)


def app_server_captures() -> list[Path]:
    """Every App Server capture (not `index.json`, the generated list, nor `llm-request-sample.json`)."""
    return sorted(p for p in APP_SERVER.glob("*.json") if p.name not in ("index.json", "llm-request-sample.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
