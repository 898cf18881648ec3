"""Paths to the shared reference captures (../shared/reference), overridable for unusual checkouts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("BRIDGE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"))
LETTA = ROOT / "letta"
SLACK = ROOT / "slack"


def letta_captures() -> list[Path]:
    return sorted(p for p in LETTA.glob("*/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
