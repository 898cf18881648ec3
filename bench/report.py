"""What a benchmark reports: one `Figure` per target, written to results.json and as a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured"
README_START = "<!-- bench:table:start -->"
README_END = "<!-- bench:table:end -->"


@dataclass
class Figure:
    """One figure against its target. `passed` is None when the figure could not be measured."""

    key: str
    figure: str
    target: str
    measured: str
    passed: bool | None
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def not_measured(key: str, figure: str, target: str, why: str) -> Figure:
    return Figure(key, figure, target, f"{NOT_MEASURED}: {why}", None)


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }


def results(figures: list[Figure], mode: str, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": machine(),
        "options": options,
        "summary": {
            "passed": sum(f.passed is True for f in figures),
            "failed": sum(f.passed is False for f in figures),
            "not_measured": sum(f.passed is None for f in figures),
        },
        "figures": [asdict(f) for f in figures],
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(data: dict[str, Any]) -> str:
    """The Markdown table: figure, target, measured, pass/fail, cores."""
    cores = data["machine"]["cores"]
    lines = ["| figure | target | measured | result | cores |", "|---|---|---|---|---|"]
    for f in data["figures"]:
        cells = (f["figure"], f["target"], f["measured"], verdict(f["passed"]), str(cores))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def notes(data: dict[str, Any]) -> str:
    """One bullet per figure that carries a note (what limits it, how it was measured)."""
    return "\n".join(f"- **{f['figure']}**: {_cell(f['note'])}" for f in data["figures"] if f["note"])


def replace_block(text: str, block: str) -> str:
    """Put `block` between the README markers (which must both be there, in order)."""
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {README_START} ... {README_END} block")
    return pattern.sub(lambda _: f"{README_START}\n{block}\n{README_END}", text, count=1)
