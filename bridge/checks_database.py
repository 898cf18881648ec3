"""`check`'s database lines: the database's state and schema, the SQLite files others may read, and SQLite on a
host that wipes its disk. Nothing here creates or changes a file that stays."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from bridge.check_line import Check
from bridge.config import Settings
from bridge.inbox import inbox_path
from bridge.letta.chooser import resolve
from bridge.store import StoreError, open_store
from bridge.store.database_url import database_name, missing_sqlite_file, sqlite_path
from bridge.store.schema import LATEST, newer_schema
from bridge.store.sqlite_connection import foreign_file, loose_files, others_tables

# Hosts whose file system is wiped on restart or deploy: (marker variable, platform, how to attach Postgres,
# whether a volume can keep the file).
EPHEMERAL_HOSTS = (
    ("DYNO", "Heroku", "heroku addons:create heroku-postgresql:essential-0", False),
    ("K_SERVICE", "Cloud Run", "create a Cloud SQL for PostgreSQL instance and set DATABASE_URL to it", False),
    ("RENDER", "Render", "create a Render PostgreSQL database and set DATABASE_URL to its internal URL", True),
    ("FLY_APP_NAME", "Fly.io", "fly postgres create, then fly postgres attach (it sets DATABASE_URL)", True),
    ("RAILWAY_ENVIRONMENT", "Railway", "add a PostgreSQL service, DATABASE_URL=${{Postgres.DATABASE_URL}}", True),
)


def ephemeral_sqlite(environ: dict[str, str]) -> list[Check]:
    """A warning when SQLite runs on a host known to wipe its disk: bindings and delivery records go with it."""
    for variable, platform, attach, volume_possible in EPHEMERAL_HOSTS:
        if environ.get(variable):
            unless = " unless the file is on a persistent volume" if volume_possible else ""
            detail = (
                f"SQLite on {platform} ({variable} is set): its file system is wiped on every restart and deploy"
                f"{unless}, and with it every channel binding and delivery record. Attach PostgreSQL ({attach}), "
                "make sure DATABASE_URL points to it (postgres://...), and restart; see docs/paas.md."
            )
            return [Check(True, "database storage", detail, warning=True)]
    return []


async def database_check(settings: Settings, letta_version: str | None) -> Check:
    """The database's line; on SQLite, with the files others may read, which `check` names and leaves as they
    are (`serve` tightens them)."""
    check = await _database_state(settings, letta_version)
    url = settings.database_url
    if not url.startswith("sqlite:") or missing_sqlite_file(url) is not None:
        return check
    loose = await asyncio.to_thread(readable_by_others, sqlite_path(url))
    if loose is None:
        return check
    return Check(check.ok, check.name, f"{check.detail}; {loose}", warning=check.ok)


def _unwritable_folder(url: str) -> str | None:
    """Why `serve` could not make its files beside the SQLite database (the lock, the inbox, the journal's -wal),
    in words, or None. A folder the bridge's user may not write passes a glance at its mode when the bridge runs
    as root on a filesystem that refuses anyway, so a file is made there and removed at once: all `check` leaves
    behind is nothing."""
    path = sqlite_path(url)
    if path == ":memory:":
        return None
    folder = Path(path).expanduser().parent
    if not folder.is_dir():
        return f"{path}: the folder {folder} does not exist"
    try:
        probe, name = tempfile.mkstemp(prefix=".bridge-check-", dir=folder)
    except OSError as exc:
        return (
            f"{path}: `serve` cannot make its files in {folder} ({exc.strerror}): let the bridge's user write "
            "that folder, or point DATABASE_URL at one it may write"
        )
    os.close(probe)
    os.unlink(name)
    return None


def readable_by_others(path: str) -> str | None:
    """The SQLite files others may read, the events inbox's too, in words, or None (a file that is no database,
    or another application's database, is not the bridge's to tighten)."""
    if others_tables(path):
        return None
    loose = {}
    for database in (path, inbox_path(path)):
        if not foreign_file(database):
            loose.update(loose_files(database))
    if not loose:
        return None
    if list(loose) == [path]:
        return f"readable by others (mode {loose[path]:o}): `serve` makes it 600"
    named = ", ".join(f"{os.path.basename(name)} mode {mode:o}" for name, mode in loose.items())
    them = "it" if len(loose) == 1 else "them"
    return f"readable by others ({named}): `serve` makes {them} 600"


async def _database_state(settings: Settings, letta_version: str | None) -> Check:
    url = settings.database_url
    where = f"SQLite file {database_name(url)}" if url.startswith("sqlite:") else database_name(url)
    absent = missing_sqlite_file(url)
    if url.startswith("sqlite:") and (unwritable := await asyncio.to_thread(_unwritable_folder, url)):
        return Check(False, "database", unwritable)
    if absent is not None:  # `check` creates nothing
        return Check(
            True,
            "database",
            f"{absent} does not exist yet: `serve` creates it, with no channels connected. If channels were "
            "connected before, they are in another file: a relative DATABASE_URL path starts in the config "
            "file's folder (else the current folder).",
            warning=True,
        )
    try:
        store = open_store(url, migrate=False)  # `check` creates nothing: a Postgres database keeps its tables as is
        await store.open()
    except StoreError as exc:
        return Check(False, "database", str(exc))
    try:
        version = await store.schema_version()
        if version == 0:
            return Check(True, "database", f"{where} (no tables yet: `serve` creates them; no channels are "
                         "connected in it yet)", warning=True)
        if version > LATEST:
            return Check(False, "database", str(newer_schema(version, where)))
        if version < LATEST:
            return Check(True, "database", f"{where} (schema v{version}: the next `serve` migrates it to "
                         f"v{LATEST})", warning=True)
        bindings = await store.list_bindings()
        default = settings.letta_group_runner
        shown = "; ".join(
            f"{b.channel_id} {b.target.pattern}, runner {resolve(b, default, letta_version)}" for b in bindings[:10]
        )
        more = f"; and {len(bindings) - 10} more" if len(bindings) > 10 else ""
        listing = f": {shown}{more}" if bindings else ""
        count = f"{len(bindings)} channel binding{'' if len(bindings) == 1 else 's'}"
        return Check(True, "database", f"{where} (schema v{version}, {count}{listing})")
    finally:
        await store.close()
