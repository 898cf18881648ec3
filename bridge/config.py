"""The one place settings are read: environment variables over an optional TOML file (found and read by
config_file.py) over defaults.

Every key is documented in config.example.toml. Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge.config_errors import (
    default_target_problem,
    json_setting,
    letta_path_problem,
    letta_query_problem,
    pasted,
    prefix_problem,
    slack_credentials_problem,
    two_credentials,
    url_problem,
)
from bridge.config_file import absolute_sqlite_url, config_file, settings_folder
from bridge.config_sources import EmptyIsUnset, empty_gives_way
from bridge.config_values import AgentLook, channel_ids, command_name, reaction_name, suggested_prompts, user_ids
from bridge.domain import ConfigureBy, RunnerChoice
from bridge.store.crypto import Cipher, CipherError

LETTA_CLOUD_URL = "https://api.letta.com"
LETTA_SCHEMES = ("http", "https", "ws", "wss")  # ws(s):// is an App Server (bridge/letta/appserver_letta.py)
SLACK_SCHEMES = ("https", "http")  # http:// only for a fake Slack on loopback, in tests
OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"  # where the bridge answers Slack's OAuth redirect (app.web_app)
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # logging's own aliases (logging.getLevelNamesMapping)


def environment_gives_way(file_keys: Collection[str]) -> Callable[[str, object], bool]:
    """`empty_gives_way` for each setting by name, with the file's keys: for `settings_words.Origin`."""
    keys = frozenset(k.lower() for k in file_keys)

    def gives_way(name: str, value: object) -> bool:
        field = Settings.model_fields.get(name)
        return field is not None and empty_gives_way(name, field, value, keys)

    return gives_way


# The most any *_days setting takes (a hundred years): a million overflowed the retention pass's cutoff every hour.
MOST_DAYS = 36500


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Many workspaces (docs/workspaces.md): Slack's OAuth install instead of one bot token.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    slack_oauth_authorize_url: str = "https://slack.com/oauth/v2/authorize"
    slack_redirect_uri: str | None = None
    slack_token_rotation_minutes: int = Field(default=120, ge=1, le=720)
    bridge_encryption_key: SecretStr | None = None
    uninstalled_bindings: Literal["delete", "keep"] = "delete"
    uninstalled_bindings_days: float = Field(
        default=30.0, ge=0, le=MOST_DAYS, description="{uninstalled_bindings=keep} keeps the bindings"
    )
    # Finished turns (the texts, replies and records they leave) are deleted after this many days; 0 keeps them.
    finished_turns_days: int = Field(default=90, ge=0, le=MOST_DAYS, description="0 keeps everything")
    slack_agent_usernames: bool = True
    slack_agents: Annotated[dict[str, AgentLook], NoDecode] = {}
    slack_working_reaction: str = "eyes"
    # Where sessions are refused: how long a turn works before the working reaction, the status line and the
    # Stop button show (0: at once). A turn answered sooner shows only its replies and the done reaction.
    slack_working_after_seconds: float = Field(default=1.0, ge=0, le=60)
    slack_done_reaction: str = "white_check_mark"
    slack_failed_reaction: str = "warning"
    slack_stopped_reaction: str = "black_square_for_stop"
    # Who may stop a thread's turns besides the person who asked and those who may configure: "anyone" in it.
    slack_stop_by: Literal["asker", "anyone"] = "asker"
    # Slack's agent sessions (working state, native Stop button); where refused, reactions, the status line and
    # an ephemeral Stop button for the asker (slack_stop_button) stand in.
    slack_sessions: bool = True
    slack_stop_button: bool = True
    # Feedback buttons (thumbs up / down) under each agent's final reply, recorded once per person and reply.
    slack_feedback: bool = True
    # Slack's agent view of a DM with the bot: the prompts a new thread suggests (up to 4; in the environment
    # separated by `|`), none to suggest nothing. The thread runs against DEFAULT_TARGET.
    slack_suggested_prompts: Annotated[tuple[str, ...], NoDecode] = (
        "What can you help me with?",
        "Summarise what we discussed last time.",
    )
    # Files shared with a mention or in a followed thread (docs/files.md): images up to FILE_MAX_BYTES go to the
    # agents as images; other files are described, small text files inlined (clipped) when FILE_INLINE_TEXT is on.
    file_max_bytes: int = Field(default=5_000_000, ge=1, le=50_000_000)
    file_inline_text: bool = False
    file_inline_chars: int = Field(default=4000, ge=100, le=100_000)
    slack_command: str = "/letta"
    slack_thread_follow_ups: bool = True
    slack_thread_follow_ups_except: Annotated[tuple[str, ...], NoDecode] = ()
    slack_live_replies: Literal["auto", "stream", "update"] = "auto"
    slack_live_edit_seconds: float = Field(default=1.5, ge=0)
    # A streamed reply shows the agent's tool calls as tasks: one by one (timeline), gathered in a plan, or not.
    slack_task_display: Literal["timeline", "plan", "off"] = "timeline"
    slack_show_reasoning: bool = False
    slack_show_reasoning_except: Annotated[tuple[str, ...], NoDecode] = ()
    slack_configure_by: ConfigureBy = "admins"
    slack_configure_users: Annotated[tuple[str, ...], NoDecode] = ()
    # Who may approve or deny an agent's tool call (its card in the thread): the person who asked, the channel's
    # configurers, anyone in the channel, or the members listed in SLACK_APPROVE_USERS.
    slack_approve_by: Literal["asker", "configurers", "channel", "users"] = "asker"
    slack_approve_users: Annotated[tuple[str, ...], NoDecode] = ()
    # An approval nobody decided within this time is denied (the agent is told why, the card says so).
    approval_timeout_seconds: float = Field(default=900.0, gt=0, le=86400)
    # What `groups` and `agents` show to members who may not configure: names only, nothing, or everything.
    slack_catalog: Literal["names", "configurers", "everyone"] = "names"
    # Hosts (host or host:port) a request's response_url may point at besides Slack's own; only tests set it.
    slack_response_url_hosts: Annotated[tuple[str, ...], NoDecode] = ()

    letta_base_url: str = LETTA_CLOUD_URL
    letta_api_key: SecretStr | None = None
    letta_project: str | None = None
    letta_group_runner: RunnerChoice = "auto"
    letta_connect_timeout: float = Field(default=10.0, gt=0, le=600)  # aiohttp cannot wait for ever (inf) to connect
    letta_read_timeout: float = Field(default=300.0, gt=0)
    # One-shot lookups (check, channels, workspaces; /letta status's probes): a Letta that never answers is said to
    # be one within this, not after the read timeout that agent turns need.
    letta_lookup_timeout: float = Field(default=30.0, gt=0)
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
    # Letta App Server: whether agents may use the server host's own tools (Bash, Read, Write...); each one that is
    # not read-only is asked in Slack first. Off: every message goes with no tools at all.
    letta_tools: bool = False
    letta_tools_except: Annotated[tuple[str, ...], NoDecode] = ()
    default_target: Annotated[tuple[str, ...], NoDecode] = ()
    default_target_in_channels: bool = False

    turn_deadline_seconds: float = Field(default=600.0, gt=0)
    # How often a running turn looks whether another process stopped it (0: never; a stop here is immediate).
    turn_stop_poll_seconds: float = Field(default=2.0, ge=0)
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
    # A client's request head must arrive within this long of connecting (or of the previous response on a
    # kept-alive connection, which is closed once idle this long); its body within http_body_timeout.
    http_header_timeout: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout: float = Field(default=10.0, gt=0, le=300)
    http_max_connections: int = Field(default=1024, ge=8, le=65535)
    http_backlog: int = Field(default=128, ge=1, le=65535)
    # SQLite only: Slack's events are recorded in an inbox file beside the database and acknowledged on a thread
    # of their own (ingress.py), so a burst of turns never slows an acknowledgement down. Off: on the main loop.
    http_events_inbox: bool = True
    # With the inbox: "process" acknowledges from a process of its own (ingress_process.py), which does not share
    # the interpreter lock with the turns, for about 35 MB more under load; "thread" shares the bridge's.
    http_ingress: Literal["thread", "process"] = "thread"
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "letta_api_key",
        "letta_project",
        "metrics_token",
        "letta_max_turns",
        "slack_client_id",
        "slack_client_secret",
        "slack_state_secret",
        "slack_redirect_uri",
        "bridge_encryption_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        return pasted(str(info.field_name), value)

    @field_validator("bridge_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked with the other settings, not when OAuth mode first uses it, so that a key that cannot work stops
        every command as a settings error (exit 2)."""
        if value is not None:
            try:
                Cipher(value.get_secret_value())
            except CipherError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        """Any case, blank as unset (INFO), and the logging module's other names for two levels (WARN, FATAL):
        each set the level before the five were checked, so a deployment that has one keeps starting."""
        if not isinstance(value, str):
            return value
        level = value.strip().upper() or "INFO"
        return LEVEL_ALIASES.get(level, level)

    @field_validator("slack_agents", mode="before")
    @classmethod
    def _agents_json(cls, value: object) -> object:
        return json_setting("slack_agents", value)

    @field_validator(
        "slack_configure_users",
        "slack_approve_users",
        "letta_tools_except",
        "default_target",
        "slack_thread_follow_ups_except",
        "slack_show_reasoning_except",
        "letta_conversations_except",
        "slack_response_url_hosts",
        mode="before",
    )
    @classmethod
    def _id_list(cls, value: object) -> object:
        # An environment variable holds ids separated by commas or spaces; TOML may give a real list.
        if isinstance(value, str):
            return tuple(part for part in re.split(r"[\s,]+", value) if part)
        return value

    @field_validator("default_target")
    @classmethod
    def _target_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problem = default_target_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("slack_configure_users", "slack_approve_users")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return user_ids(value)

    @field_validator(
        "slack_thread_follow_ups_except",
        "slack_show_reasoning_except",
        "letta_conversations_except",
        "letta_tools_except",
    )
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return channel_ids(value)

    @field_validator(
        "slack_working_reaction", "slack_done_reaction", "slack_failed_reaction", "slack_stopped_reaction"
    )
    @classmethod
    def _reaction(cls, value: str) -> str:
        return reaction_name(value)

    @field_validator("slack_suggested_prompts", mode="before")
    @classmethod
    def _prompts(cls, value: object) -> object:
        return suggested_prompts(value)

    @field_validator("letta_context_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        """Formatted for every turn: a placeholder it does not know would fail each one, so it is refused here."""
        problem = prefix_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("slack_command")
    @classmethod
    def _command_name(cls, value: str) -> str:
        return command_name(value)

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        value = value.strip()
        problem = url_problem("SLACK_API_URL", value, SLACK_SCHEMES) or slack_credentials_problem(
            "SLACK_API_URL", value
        )
        if problem:
            raise ValueError(problem)
        # AsyncWebClient joins with urljoin: without the slash the last path segment is dropped.
        return value if value.endswith("/") else value + "/"

    @field_validator("letta_base_url")
    @classmethod
    def _letta_url(cls, value: str) -> str:
        value = value.strip()
        problem = (
            url_problem("LETTA_BASE_URL", value, LETTA_SCHEMES)
            or letta_query_problem("LETTA_BASE_URL", value)
            or letta_path_problem("LETTA_BASE_URL", value)
        )
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url_trimmed(cls, value: object) -> object:
        """A secret made with `echo` ends in a line break: kept, it named a new, empty SQLite file beside the real
        one, or a Postgres database that does not exist."""
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_letta_credential(self) -> Settings:
        key = self.letta_api_key.get_secret_value() if self.letta_api_key else None
        problem = two_credentials(self.letta_base_url, key, ("LETTA_BASE_URL", "LETTA_API_KEY"))
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _redirect_uri(self) -> Settings:
        """With OAuth on, Slack sends each installer there: a URL with no scheme Slack takes failed every
        workspace's install long after the start. Unread without OAuth, so a leftover value stops nothing; its path
        is not checked, as a proxy in front may map any path onto the bridge's /slack/oauth_redirect."""
        uri = self.slack_redirect_uri
        problem = self.oauth and uri and url_problem("SLACK_REDIRECT_URI", uri, SLACK_SCHEMES)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _approvers_listed(self) -> Settings:
        if self.slack_approve_by == "users" and not self.slack_approve_users:
            raise ValueError("SLACK_APPROVE_BY=users needs SLACK_APPROVE_USERS: the Slack user ids who may decide")
        return self

    @model_validator(mode="after")
    def _database_file_from_the_config_folder(self) -> Settings:
        # Started from another folder, a relative path would silently open a new, empty store.
        self.database_url = absolute_sqlite_url(self.database_url, settings_folder())
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_file()
        toml = TomlConfigSettingsSource(settings_cls, toml_file=path) if path is not None else None
        keys = frozenset(k.lower() for k in toml.toml_data) if toml is not None else frozenset()
        sources: list[PydanticBaseSettingsSource] = [init_settings, EmptyIsUnset(settings_cls, keys)]
        if toml is not None:
            sources.append(toml)
        return tuple(sources)

    @property
    def oauth(self) -> bool:
        """Many workspaces, each installed through Slack's OAuth flow, instead of one bot token."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    def shows_reasoning(self, channel_id: str) -> bool:
        return self.slack_show_reasoning != (channel_id in self.slack_show_reasoning_except)

    def tools_in(self, channel_id: str) -> bool:
        return self.letta_tools != (channel_id in self.letta_tools_except)
