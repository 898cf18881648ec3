"""Where the settings file is and what it holds: BRIDGE_CONFIG or ./config.toml, its keys as written, and the
folder relative paths in the settings start from (a relative SQLite path is made absolute there). The Settings
model that reads it, over the environment, is config.py's."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from bridge.store.database_url import sqlite_path

DEFAULT_CONFIG_FILE = "config.toml"


def config_file() -> Path | None:
    """`BRIDGE_CONFIG` if set (it must exist), else ./config.toml when present."""
    named = os.environ.get("BRIDGE_CONFIG")
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def where_read() -> str:
    """Which file the settings came from, besides the environment: a newcomer who ran `init` in another folder
    learns why what it wrote was not read."""
    path = config_file()
    if path is not None:
        return f"(Settings were read from the environment and {path.absolute()}.)"
    return (
        f"(No config file was read: there is no {DEFAULT_CONFIG_FILE} in {Path().absolute()}; run from the folder "
        "that has it, or name it in BRIDGE_CONFIG.)"
    )


def settings_folder() -> Path:
    """Where relative paths in the settings start: the config file's folder, else the current folder."""
    path = config_file()
    return (path.parent if path is not None else Path()).absolute()


def absolute_sqlite_url(url: str, folder: Path) -> str:
    """`sqlite:///bridge.db` -> `sqlite:////<folder>/bridge.db`, `sqlite:///~/bridge.db` -> the home folder's;
    absolute paths, :memory: and Postgres URLs are returned as they are."""
    if not url.startswith("sqlite:"):
        return url
    path = sqlite_path(url)
    file = Path(path).expanduser()
    if path == ":memory:" or (file.is_absolute() and path == str(file)):
        return url
    return f"sqlite:///{folder / file}"  # `folder /` keeps an absolute (expanded) file as it is


def read_keys(path: Path) -> dict[str, object]:
    """The file's keys as written (OSError, or ValueError when it is not TOML), so that a key that is no setting
    can be named."""
    with path.open("rb") as file:
        return tomllib.load(file)


def config_readable_by_others() -> str | None:
    """The config file's words when others on this machine may read it (it holds the tokens and keys `init`
    wrote, mode 600): what to do, or None."""
    path = config_file()
    try:
        mode = path.stat().st_mode & 0o777 if path is not None else 0
    except OSError:
        return None
    if path is None or not mode & 0o077:
        return None
    return f"{path} may be read by other users of this machine (mode {mode:o}) and holds secrets: chmod 600 {path}"
