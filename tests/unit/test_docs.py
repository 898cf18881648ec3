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


def test_gitignore_covers_every_file_serve_keeps_beside_its_sqlite_database(tmp_path: Path) -> None:
    import asyncio
    from fnmatch import fnmatch

    from bridge.inbox import Inbox, inbox_path
    from bridge.store import open_store

    async def serve_files() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}", serving=True)
        await store.open()
        inbox = Inbox(inbox_path(str(tmp_path / "bridge.db")))
        inbox.open()
        try:
            inbox.record("v0=a", 4e9, {}, b"{}")
            return sorted(p.name for p in tmp_path.iterdir())
        finally:
            inbox.close()
            await store.close()

    names = asyncio.run(serve_files())
    assert {"bridge.db", "bridge.db.lock", "bridge.db.inbox", "bridge.db.inbox-wal"} <= set(names)
    lines = (ROOT / ".gitignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#") and "/" not in line]
    assert [name for name in names if not any(fnmatch(name, p) for p in patterns)] == []


def test_operations_names_every_option_of_channels_connect() -> None:
    import argparse

    from bridge.cli import build_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        [choices] = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return choices[name]

    connect = sub(sub(build_parser(), "channels"), "connect")
    options = {o for a in connect._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    row = table_row((ROOT / "docs" / "operations.md").read_text(), "python -m bridge channels connect C… group-…")
    assert options == set(re.findall(r"`(--[a-z-]+)`", row[1]))


def test_operations_names_every_metric_with_its_labels_and_no_other() -> None:
    """An operator builds dashboards and alerts from docs/operations.md: each series /metrics has is named there
    with its labels, and nothing named there is missing from /metrics."""
    from prometheus_client.metrics import MetricWrapperBase

    from bridge.metrics import Metrics

    text = (ROOT / "docs" / "operations.md").read_text()
    documented = {
        name: frozenset(filter(None, labels.split(",")))
        for name, labels in re.findall(r"`(bridge_[a-z_]+)(?:\{([a-z_,]*)\})?`", text)
    }
    metrics = [m for m in vars(Metrics()).values() if isinstance(m, MetricWrapperBase)]
    exposed = {
        f"{m._name}_total" if m._type == "counter" else m._name: frozenset(m._labelnames) for m in metrics
    }
    assert documented == exposed


def test_every_variable_init_reads_is_documented_where_the_settings_are() -> None:
    """`init` takes each answer from a flag or an environment variable; BRIDGE_PUBLIC_URL was named only in
    `init --help`, so a script setting up the bridge could not learn it from README or docs/operations.md."""
    from bridge.init_questions import BOT_TOKEN, LETTA_KEY, LETTA_URL, PUBLIC_URL, SIGNING_SECRET

    readme = (ROOT / "README.md").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    for q in (BOT_TOKEN, SIGNING_SECRET, LETTA_URL, LETTA_KEY, PUBLIC_URL):
        assert f"`{q.variable}`" in readme and f"`{q.variable}`" in operations, q.variable
