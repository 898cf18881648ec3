"""The settings as a command loads them: every problem found said at once (values, the config file's unknown
keys, DATABASE_URL, the proxies), and with a refused value, what else is missing besides. Also which keys of a
config file's text such a load would refuse, for `init` to leave out of the file it writes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from pydantic_settings import SettingsError as SourceError

from bridge.config import Settings, environment_gives_way
from bridge.config_errors import database_problem, plain_errors, unknown_keys, unparsed
from bridge.config_file import config_file, read_keys
from bridge.proxies import check_environment
from bridge.settings_words import Origin, sentence


class SettingsError(Exception):
    """Settings are missing or invalid; each line says which, why it matters and where to find it."""

    def __init__(
        self, lines: list[str], partial: Settings | None = None, refused: frozenset[str] = frozenset()
    ) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.partial = partial  # the settings with each refused value left at its default, where they validate
        self.refused = refused  # those settings' names (upper case): said already, not to be said missing too


def load_settings() -> Settings:
    """The settings, or a SettingsError with a line for every problem found: values, the config file's unknown
    keys, DATABASE_URL and the proxies, all at once rather than one per run."""
    path = config_file()
    if path is not None and not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "something that does not exist"
        raise SettingsError([f"BRIDGE_CONFIG points to {path}, {what}: point it at a config file (config.toml)."])
    try:
        keys = read_keys(path) if path is not None else {}
    except (OSError, ValueError) as exc:
        raise SettingsError([f"could not read the config file {path}: {exc}"]) from None
    origin = Origin(dict(os.environ), path, keys, environment_gives_way(keys))
    settings: Settings | None = None
    lines: list[str] = []
    partial: Settings | None = None
    refused: frozenset[str] = frozenset()
    try:
        settings = Settings()
    except ValidationError as exc:
        lines += plain_errors(exc, Settings, origin)
        refused = _refused(exc)
        partial = _without(refused)
    except SourceError as exc:
        raise SettingsError([unparsed(exc, path)]) from None
    lines += unknown_keys(path, keys, set(Settings.model_fields)) if path is not None else []
    url = settings.database_url if settings is not None else origin.of("database_url")[1]
    lines += database_problem(Settings.model_fields["database_url"].default if url is None else url)
    lines += check_environment()  # every connection takes the proxies: a bad one is named at start
    if lines or settings is None:
        said = {name.upper() for name in refused}
        if "letta_base_url" in refused:  # whether a key is needed depends on the server the URL meant
            said.add("LETTA_API_KEY")
        raise SettingsError(lines, partial, frozenset(said))
    return settings


class ValuesOnly(Settings):
    """Settings from the values given alone: the environment or a config file must not colour them."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def refused_keys(path: Path, keys: Mapping[str, object]) -> dict[str, str]:
    """The keys of a config file's text (`path`'s, as TOML read it) that loading it would refuse, each with the
    line `load_settings` says of it: an unknown key, a value no setting takes, a DATABASE_URL that cannot work.
    Without them the rest loads; a problem of settings together, which no one key carries, is under "" (the
    environment is left out: the file must load on its own)."""
    known = set(Settings.model_fields)
    refused = {key: line for key, value in keys.items() for line in unknown_keys(path, {key: value}, known)}
    named = {key.lower(): key for key in keys if key not in refused}
    values: dict[str, Any] = {name: keys[key] for name, key in named.items()}
    # Its certificate files may be only where the bridge runs: a URL init keeps is not dropped for them.
    for line in database_problem(values.get("database_url"), files=False):
        refused[named["database_url"]] = line
        values.pop("database_url", None)
    origin = Origin({}, path, keys)
    while True:
        try:
            ValuesOnly(**values)
            return refused
        except ValidationError as exc:
            errors = exc.errors()
        for err in errors:
            name = str(err["loc"][0]) if err["loc"] else ""
            refused.setdefault(named.get(name, ""), sentence(err, Settings, origin))
        left = {name: value for name, value in values.items() if named[name] not in refused}
        if "" in refused or len(left) == len(values):
            return refused
        values = left


def _refused(exc: ValidationError) -> frozenset[str]:
    return frozenset(str(e["loc"][0]) for e in exc.errors() if e["loc"] and str(e["loc"][0]) in Settings.model_fields)


def _without(refused: frozenset[str]) -> Settings | None:
    """The settings with each refused value at its default (a keyword beats the environment and the file), so
    that what is missing besides can be said in the same run; None where that does not validate either, or where
    a refused value decides what the rest must be (OAuth mode's)."""
    if refused & {"slack_client_id", "slack_client_secret", "slack_redirect_uri", "bridge_encryption_key"}:
        return None
    try:
        return Settings(**{n: Settings.model_fields[n].get_default(call_default_factory=True) for n in refused})
    except (ValidationError, SourceError):
        return None
