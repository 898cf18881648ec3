"""The one place settings are read: environment variables over an optional TOML file over defaults.

Every key is documented in config.example.toml. Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge.domain import ConfigureBy, RunnerChoice

LETTA_CLOUD_URL = "https://api.letta.com"
DEFAULT_CONFIG_FILE = "config.toml"


def config_file() -> Path | None:
    """`BRIDGE_CONFIG` if set (it must exist), else ./config.toml when present."""
    named = os.environ.get("BRIDGE_CONFIG")
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


class AgentLook(BaseModel):
    """How one agent appears in Slack (needs chat:write.customize)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_agent_usernames: bool = True
    slack_agents: dict[str, AgentLook] = {}
    slack_working_reaction: str = "eyes"
    slack_done_reaction: str = "white_check_mark"
    slack_failed_reaction: str = "warning"
    slack_command: str = "/letta"
    slack_thread_follow_ups: bool = True
    slack_thread_follow_ups_except: Annotated[tuple[str, ...], NoDecode] = ()
    slack_live_replies: Literal["auto", "stream", "update"] = "auto"
    slack_live_edit_seconds: float = Field(default=1.5, ge=0)
    slack_show_reasoning: bool = False
    slack_show_reasoning_except: Annotated[tuple[str, ...], NoDecode] = ()
    slack_configure_by: ConfigureBy = "admins"
    slack_configure_users: Annotated[tuple[str, ...], NoDecode] = ()

    letta_base_url: str = LETTA_CLOUD_URL
    letta_api_key: SecretStr | None = None
    letta_project: str | None = None
    letta_group_runner: RunnerChoice = "auto"
    letta_connect_timeout: float = Field(default=10.0, gt=0)
    letta_read_timeout: float = Field(default=300.0, gt=0)
    letta_context_prefix: str = "[{user} in #{channel} on Slack] "
    letta_send_retries: int = Field(default=3, ge=0, le=10)
    letta_retry_base_seconds: float = Field(default=1.0, ge=0)
    letta_recovery_wait_seconds: float = Field(default=120.0, ge=0)
    letta_streaming: bool = True
    letta_stream_tokens: bool = False
    letta_max_turns: int | None = Field(default=None, ge=1, le=50)
    letta_conversations: bool = True
    letta_conversations_except: Annotated[tuple[str, ...], NoDecode] = ()
    letta_busy_wait_seconds: float = Field(default=300.0, ge=0)
    default_target: Annotated[tuple[str, ...], NoDecode] = ()
    default_target_in_channels: bool = False

    turn_deadline_seconds: float = Field(default=600.0, gt=0)
    # Turns running at once across channels. High enough that a burst over many channels (a start-up after an
    # outage) never waits in rounds: a turn waiting on Letta holds little memory and one socket, so the limit
    # only guards against runaway memory. On Postgres each send also holds a connection for its agent lock,
    # at most POSTGRES_LOCK_CONNECTIONS (app.py) at once, so the database's connection limit is never reached.
    max_concurrent_turns: int = Field(default=256, ge=1)
    # A PaaS kills 30 s after SIGTERM; finish or record what is in flight well before that.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=25)

    database_url: str = "sqlite:///bridge.db"
    # Postgres only: connections a process keeps for queries; agent locks open up to max_concurrent_turns more.
    database_pool_size: int = Field(default=5, ge=1, le=100)
    # Several processes on one database: a process renews its bindings' leases every third of this; one that
    # died leaves its turns to another process after at most this long.
    turn_lease_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    metrics_token: SecretStr | None = None
    host: str = "0.0.0.0"  # noqa: S104 - a PaaS routes to every interface
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "letta_api_key",
        "metrics_token",
        "letta_max_turns",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("letta_project", mode="before")
    @classmethod
    def _blank_project(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "slack_configure_users",
        "default_target",
        "slack_thread_follow_ups_except",
        "slack_show_reasoning_except",
        "letta_conversations_except",
        mode="before",
    )
    @classmethod
    def _id_list(cls, value: object) -> object:
        # An environment variable holds ids separated by commas or spaces; TOML may give a real list.
        if isinstance(value, str):
            return tuple(part for part in re.split(r"[\s,]+", value) if part)
        return value

    @field_validator("slack_command")
    @classmethod
    def _command_name(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("/"):
            value = "/" + value
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("a slash command is / then up to 31 lower-case letters, digits, - or _ (like /letta)")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # AsyncWebClient joins with urljoin: without the slash the last path segment is dropped.
        return value if value.endswith("/") else value + "/"

    @field_validator("letta_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def shows_reasoning(self, channel_id: str) -> bool:
        return self.slack_show_reasoning != (channel_id in self.slack_show_reasoning_except)

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.letta_api_key,
            self.metrics_token,
        ]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        password = urlsplit(self.database_url).password  # postgres://user:password@host/db
        return found + ([password, unquote(password)] if password else [])


@dataclass(frozen=True)
class Requirement:
    variable: str
    purpose: str
    where: str


SLACK_BOT_TOKEN = Requirement(
    "SLACK_BOT_TOKEN",
    "the bot token the bridge posts with (starts with xoxb-)",
    "Slack app settings > OAuth & Permissions > Bot User OAuth Token",
)
SLACK_SIGNING_SECRET = Requirement(
    "SLACK_SIGNING_SECRET",
    "proves that requests to /slack/events come from Slack",
    "Slack app settings > Basic Information > App Credentials > Signing Secret",
)
SLACK_APP_TOKEN = Requirement(
    "SLACK_APP_TOKEN",
    "opens the Socket Mode connection (starts with xapp-)",
    "Slack app settings > Basic Information > App-Level Tokens (scope connections:write)",
)
LETTA_API_KEY = Requirement(
    "LETTA_API_KEY",
    "authenticates the bridge to Letta Cloud",
    "Letta Cloud > API keys (or set LETTA_BASE_URL to your self-hosted server)",
)


class SettingsError(Exception):
    """Settings are missing or invalid; each line says which, why it matters and where to find it."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings() -> Settings:
    path = config_file()
    if path is not None and not path.is_file():
        raise SettingsError([f"BRIDGE_CONFIG points to {path}, which does not exist."])
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError(lines) from None
    except (OSError, ValueError) as exc:
        raise SettingsError([f"could not read the config file {path}: {exc}"]) from None


def missing(settings: Settings, mode: Literal["serve", "socket", "slack", "letta"]) -> list[str]:
    """Plain-words lines for each setting `mode` needs but does not have."""
    needed: list[Requirement] = []
    if mode in ("serve", "socket", "slack"):
        if settings.slack_bot_token is None:
            needed.append(SLACK_BOT_TOKEN)
    if mode == "serve" and settings.slack_signing_secret is None:
        needed.append(SLACK_SIGNING_SECRET)
    if mode == "socket" and settings.slack_app_token is None:
        needed.append(SLACK_APP_TOKEN)
    if mode in ("serve", "socket", "letta") and settings.letta_base_url == LETTA_CLOUD_URL:
        if settings.letta_api_key is None:
            needed.append(LETTA_API_KEY)
    return [f"missing {r.variable}: {r.purpose}. Find it in {r.where}." for r in needed]
