"""How the environment is read into settings: an empty variable is no setting where it could only be a mistake
(a docker-compose `${VAR}` while VAR is unset), and never hides config.toml's value."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource

# URLs with a default of their own: Slack's are harmless to fall back on; Letta's (Cloud, sent the key meant for
# another server) and the database's (a new, empty store) are not, so those two fall back only to the file's.
SLACK_URLS = frozenset({"slack_api_url", "slack_oauth_authorize_url"})
FILE_ONLY_URLS = frozenset({"letta_base_url", "database_url"})
URL_SETTINGS = SLACK_URLS | FILE_ONLY_URLS  # blank (spaces only) is empty too, as for a setting unset by default


class EmptyIsUnset(EnvSettingsSource):
    """The environment, where an empty or blank variable (docker-compose's `${VAR}` while VAR is unset, a .env
    line `KEY= `) is no setting for a token or key that is unset by default and for Slack's URLs, and does not
    hide config.toml's value; an empty LETTA_BASE_URL or DATABASE_URL gives way only to a value the file has, and
    is refused otherwise. Where empty means something (LETTA_CONTEXT_PREFIX, SLACK_SUGGESTED_PROMPTS, a reaction
    turned off), it is taken as given."""

    def __init__(self, settings_cls: type[BaseSettings], file_keys: frozenset[str] = frozenset()) -> None:
        super().__init__(settings_cls)
        self._file_keys = file_keys  # the settings config.toml sets

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, complex_ = super().get_field_value(field, field_name)
        if empty_gives_way(field_name, field, value, self._file_keys):
            return None, key, complex_
        return value, key, complex_


def empty_gives_way(name: str, field: FieldInfo, value: object, file_keys: Collection[str]) -> bool:
    """Whether the environment's `value` for the setting is no setting at all (`EmptyIsUnset`): an empty or blank
    (spaces only) token or key unset by default, which the settings take as unset anyway (`config_errors.pasted`),
    an empty Slack URL, or an empty LETTA_BASE_URL or DATABASE_URL the file has a value for.
    Also what the words of a settings error go by (`settings_words.Origin`): the value in force is then the file's."""
    if not isinstance(value, str) or value.strip():
        return False
    if value and not (field.default is None or name in URL_SETTINGS):  # spaces may mean something (a prefix)
        return False
    return field.default is None or name in SLACK_URLS or (name in FILE_ONLY_URLS and name in file_keys)
