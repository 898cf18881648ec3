"""What README.md and docs/ say about the code, checked against the code: a newcomer follows the docs first."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def table_row(text: str, setting: str) -> list[str]:
    """The cells of the markdown table row whose first cell is `setting` (in backquotes)."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == f"`{setting}`":
            return cells
    raise AssertionError(f"no table row for {setting}")


def test_readme_gives_the_letta_url_the_settings_default_to() -> None:
    readme = (ROOT / "README.md").read_text()
    default = Settings.model_fields["letta_base_url"].default
    assert table_row(readme, "LETTA_BASE_URL")[1] == f"`{default}`"
    assert not re.search(r"`LETTA_BASE_URL`[^|]*\| `http://localhost:8283`", readme)


def test_readme_names_the_scopes_check_only_warns_about() -> None:
    from bridge.manifest import SCOPES

    readme = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"the scopes the manifest asks for, ([^;]*) only warned about;", readme)
    assert said is not None
    assert set(re.findall(r"`([^`]+)`", said.group(1))) == {s.name for s in SCOPES if s.optional}
