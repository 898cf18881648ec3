"""Where the settings file is and what it holds: BRIDGE_CONFIG or ./config.toml, its keys as written, and the
folder relative paths in the settings start from (a relative SQLite path is made absolute there), and a file
written readable by its owner only (init's). The Settings model that reads it, over the environment, is
config.py's."""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Collection
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


def earlier_settings(path: Path, decided: Collection[str]) -> tuple[dict[str, str], list[str]]:
    """The settings an existing config file holds besides the `decided` keys, each as TOML value text: `init` keeps
    them when it writes the file anew (a token rotated must not take `database_url` with it, and the bindings with
    that). Second: what could not be kept (a value of a shape no setting has; the whole file when it is no TOML)."""
    try:
        keys = read_keys(path)
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError):
        return {}, [f"{path} (not readable as TOML)"]
    kept: dict[str, str] = {}
    lost: list[str] = []
    for key, value in keys.items():
        if key.lower() in decided:  # settings are read whatever a key's case (LETTA_API_KEY = … works too)
            continue
        text = _toml_value(value)
        if text is None:
            lost.append(key)
        else:
            kept[key] = text
    return kept, lost


def _toml_value(value: object) -> str | None:
    """A setting's value as TOML: strings, numbers, booleans, lists of them and tables of them (`slack_agents`,
    each agent's look), written inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        items = [_toml_value(item) for item in value]
        return None if None in items else "[" + ", ".join(str(item) for item in items) + "]"
    if isinstance(value, dict):
        pairs = [(toml_key(str(k)), _toml_value(v)) for k, v in value.items()]
        if any(text is None for _, text in pairs):
            return None
        return "{" + ", ".join(f"{k} = {text}" for k, text in pairs) + "}" if pairs else "{}"
    return None


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's, with DEL escaped too (JSON leaves it raw; TOML forbids it raw)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def write_private(path: Path, text: str) -> None:
    """Write through a temporary file created with mode 600, then rename: no moment where others can read it."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
