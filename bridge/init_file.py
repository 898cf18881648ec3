"""The config file `python -m bridge init` writes: what it keeps of the file it replaces (not what a load would
refuse), its text, whether the bridge starts from it in this environment, and which exported variables hold other
values than it writes (the environment wins over the file, so those are what a bridge started here would use)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

from bridge.config import Settings, environment_gives_way
from bridge.config_file import earlier_settings, toml_key, toml_string
from bridge.config_load import SettingsError, load_settings, refused_keys
from bridge.config_sources import EmptyIsUnset
from bridge.settings_words import Origin


@dataclass(frozen=True)
class Replaced:
    """What the file being replaced holds besides init's answers. `kept`: each key's TOML value text; `lost`: what
    no setting's shape takes; `refused`: what a load would refuse, with its words ("" for settings that only
    together cannot be, which no one key carries)."""

    kept: dict[str, str]
    lost: list[str]
    refused: dict[str, str]


def replaced(path: Path, values: Mapping[str, str], decided: Collection[str]) -> Replaced:
    """The settings of the file at `path` besides the `decided` keys; those a load of the new file (`values` with
    them) would refuse are left out: init is often run again to repair the file."""
    kept, lost = earlier_settings(path, decided)
    refused = refused_keys(path, {**values, **kept_values(kept)})
    return Replaced({k: text for k, text in kept.items() if k not in refused}, lost, refused)


def kept_values(kept: Mapping[str, str]) -> dict[str, Any]:
    """The kept keys' values, as a load of the file will read them."""
    return tomllib.loads("".join(f"{toml_key(k)} = {text}\n" for k, text in kept.items()))


def planned_settings(kept: Mapping[str, Any], values: Mapping[str, Any], asked: Collection[str]) -> Settings:
    """The settings a bridge started here will load from the file being written: its `values` (init's answers)
    over the environment over the `kept` keys, then the defaults, so that init's checks describe the runner and
    conversations it will run with, not the defaults. The environment's values of the `asked` settings are left
    out: init's answer or flag is what it writes, and one exported over it is named at the end (`overridden`), so
    an exported value the bridge would refuse must not stop init before it asks. Raises ValidationError or
    pydantic-settings' SettingsError as a load would."""
    file_values = {key.lower(): value for key, value in kept.items()}

    class Planned(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            environment = _Unasked(settings_cls, frozenset(file_values), frozenset(asked))
            return (init_settings, environment, InitSettingsSource(settings_cls, file_values))

    return Planned(**values)


class _Unasked(EmptyIsUnset):
    """The environment without the settings init asks about."""

    def __init__(self, settings_cls: type[BaseSettings], file_keys: frozenset[str], asked: frozenset[str]) -> None:
        super().__init__(settings_cls, file_keys)
        self._asked = asked

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in self._asked:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def config_text(values: Mapping[str, str], kept: Mapping[str, str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Written by `python -m bridge init` on {stamp}; every key is documented in config.example.toml.",
        "# It holds secrets: it is readable by its owner only (mode 600); keep it out of version control.",
        "",
        *(f"{key} = {toml_string(value)}" for key, value in values.items()),
        *(["", "# Kept from the file this one replaced:"] if kept else []),
        *(f"{toml_key(key)} = {text}" for key, text in kept.items()),
    ]
    return "\n".join(lines) + "\n"


def starts_here(path: Path) -> bool:
    """Whether `serve` here, with this environment, loads the file at `path` (the environment wins over it, and
    may set what the file lacks: SLACK_APPROVE_USERS beside the file's slack_approve_by = "users")."""
    saved = os.environ.get("BRIDGE_CONFIG")
    os.environ["BRIDGE_CONFIG"] = str(path)
    try:
        load_settings()
        return True
    except SettingsError:
        return False
    finally:
        if saved is None:
            os.environ.pop("BRIDGE_CONFIG", None)
        else:
            os.environ["BRIDGE_CONFIG"] = saved


def overridden(path: Path, answers: Mapping[str, str]) -> list[str]:
    """The exported variables of the `answers`' settings that hold another value than the answer written (an old key
    still exported, a flag beside a variable): a bridge started from this shell would use them, not the file. Named
    only: the values may be secrets."""
    written = [key for key, value in answers.items() if value]
    origin = Origin(dict(os.environ), path, {}, environment_gives_way(written))
    named = []
    for key, answer in answers.items():
        variable, value, source = origin.of(key)
        if source == "environment" and str(value).strip() != answer:
            named.append(variable)
    return named
