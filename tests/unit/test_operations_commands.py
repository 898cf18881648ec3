"""revBS, README: "The command line and its exit codes: docs/operations.md". Its command table names every command
`python -m bridge --help` lists (`workspaces list|remove` was missing from it)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bridge.cli import build_parser

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_command_table_names_every_command() -> None:
    table = OPERATIONS.read_text().split("## The command line", 1)[1].split("Exit status", 1)[0]
    named = set(re.findall(r"`python -m bridge (\w+)", table))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) - named == set()
