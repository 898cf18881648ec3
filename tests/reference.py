"""Paths to the captured wire data the quick suite reads: ``reference/`` in this repository (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "reference"
LETTA = ROOT / "letta"
SLACK = ROOT / "slack"


def letta_captures() -> list[Path]:
    return sorted(p for p in LETTA.glob("*/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
