from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.checks import slack_unreachable
from bridge.config import Settings
from bridge.config_load import SettingsError, load_settings
from bridge.requirements import missing
from bridge.settings_secrets import secrets

A1, A2 = "agent-1d31f591-6414-4aa7-9fb2-3d0e7082a41e", "agent-2d31f591-6414-4aa7-9fb2-3d0e7082a41e"
G = "group-3a30ad74-0ed7-464d-b24f-605684f0d67f"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "LETTA_API_KEY", "LETTA_BASE_URL",
                 "SLACK_COMMAND", "SLACK_CONFIGURE_BY", "SLACK_CONFIGURE_USERS", "DEFAULT_TARGET",
                 "BRIDGE_CONFIG", "PORT", "SLACK_API_URL", "LETTA_GROUP_RUNNER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


def test_missing_settings_each_get_a_line_saying_what_and_where() -> None:
    lines = missing(Settings(), "serve")
    assert [line.split(":")[0] for line in lines] == [
        "missing SLACK_BOT_TOKEN", "missing SLACK_SIGNING_SECRET", "missing LETTA_API_KEY"
    ]
    assert all("Find it in" in line for line in lines)


def test_self_hosted_letta_needs_no_key_and_blank_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283/")
    monkeypatch.setenv("SLACK_BOT_TOKEN", " ")
    settings = load_settings()
    assert settings.letta_base_url == "http://localhost:8283"
    assert missing(settings, "letta") == []
    assert settings.slack_bot_token is None


def test_environment_overrides_the_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bridge.toml"
    path.write_text('port = 4000\nslack_api_url = "http://127.0.0.1:9/api"\nletta_group_runner = "server"\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    monkeypatch.setenv("PORT", "5000")
    settings = load_settings()
    assert settings.port == 5000
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.letta_group_runner == "server"


def first_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    """The first plain line load_settings raises with `name` set to `value` (then unset again)."""
    with monkeypatch.context() as patch:
        patch.setenv(name, value)
        with pytest.raises(SettingsError) as err:
            load_settings()
    return err.value.lines[0]


def test_invalid_values_and_a_missing_config_file_are_plain_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert first_error(monkeypatch, "LETTA_GROUP_RUNNER", "sometimes").startswith("LETTA_GROUP_RUNNER")
    assert "does not exist" in first_error(monkeypatch, "BRIDGE_CONFIG", "/nonexistent/bridge.toml")


def test_secrets_never_print() -> None:
    settings = Settings(slack_bot_token="xoxb-secret-1", letta_api_key="letta-key-2")
    assert "xoxb-secret-1" not in repr(settings) and "letta-key-2" not in str(settings)
    assert set(secrets(settings)) == {"xoxb-secret-1", "letta-key-2"}


def test_command_permission_and_default_target_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.slack_command == "/letta" and settings.slack_configure_by == "admins"
    assert settings.slack_configure_users == ()
    assert settings.default_target == () and settings.default_target_in_channels is False
    monkeypatch.setenv("SLACK_COMMAND", "ask-crew")
    monkeypatch.setenv("SLACK_CONFIGURE_BY", "creator")
    monkeypatch.setenv("SLACK_CONFIGURE_USERS", "U0AAA, U0BBB U0CCC")
    monkeypatch.setenv("DEFAULT_TARGET", f"{A1} {A2}")
    settings = load_settings()
    assert settings.slack_command == "/ask-crew" and settings.slack_configure_by == "creator"
    assert settings.slack_configure_users == ("U0AAA", "U0BBB", "U0CCC")
    assert settings.default_target == (A1, A2)


def test_lists_from_toml_and_bad_values(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bridge.toml"
    path.write_text('slack_configure_users = ["U0AAA", "U0BBB"]\ndefault_target = "{G}"\n'.replace("{G}", G))
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    settings = load_settings()
    assert settings.slack_configure_users == ("U0AAA", "U0BBB") and settings.default_target == (G,)
    assert first_error(monkeypatch, "SLACK_CONFIGURE_BY", "anyone").startswith("SLACK_CONFIGURE_BY")
    assert first_error(monkeypatch, "SLACK_COMMAND", "/Has Space").startswith("SLACK_COMMAND: a slash command is")


def test_a_validator_s_error_reads_without_pydantic_s_words(monkeypatch: pytest.MonkeyPatch) -> None:
    assert first_error(monkeypatch, "SLACK_APPROVE_BY", "users").startswith(
        "SLACK_APPROVE_BY=users needs SLACK_APPROVE_USERS: "
    )


def test_every_setting_is_documented_in_the_example_file() -> None:
    from pathlib import Path

    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    undocumented = [name for name in Settings.model_fields if f"{name} =" not in example]
    assert undocumented == []


def test_approvals_by_a_list_need_the_list() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(slack_approve_by="users")
    assert "SLACK_APPROVE_USERS" in str(error.value)
    assert Settings(slack_approve_by="users", slack_approve_users="U1, U2").slack_approve_users == ("U1", "U2")


def test_a_copy_of_the_example_left_unedited_is_not_ready_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each placeholder config.example.toml holds (uncommented or not) counts as unset, and is said to be one."""
    import re
    from pathlib import Path

    from bridge.requirements import PLACEHOLDERS

    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    for variable, placeholder in PLACEHOLDERS.items():
        assert re.search(rf'^(# )?{variable.lower()} = "{re.escape(placeholder)}"$', example, re.M), variable
    Path("config.toml").write_text(example)
    lines = missing(load_settings(), "serve")
    assert [line.split(" is ")[0] for line in lines] == ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"]
    assert 'still the example\'s placeholder "xoxb-..."' in lines[0] and "Find it in" in lines[0]
    uncommented = re.sub(r"^# (slack_app_token|letta_api_key) = ", r"\1 = ", example, flags=re.M)
    Path("config.toml").write_text(uncommented.replace('letta_base_url = "http://localhost:8283"', ""))
    assert [line.split(" is ")[0] for line in missing(load_settings(), "socket")] == [
        "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "LETTA_API_KEY"
    ]
    monkeypatch.setenv("SLACK_CLIENT_ID", "1234567890.0987654321")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", PLACEHOLDERS["SLACK_CLIENT_SECRET"])
    assert missing(load_settings(), "letta")[0].startswith("SLACK_CLIENT_SECRET is still the example's placeholder")


def test_a_server_url_without_a_scheme_or_host_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken as it was, `localhost:8283` made `check` blame a dropped connection: the setting is named instead."""
    assert first_error(monkeypatch, "LETTA_BASE_URL", "localhost:8283") == (
        "LETTA_BASE_URL=localhost:8283 has no scheme: write it as http://localhost:8283 (or https://…, ws://… or wss://…)"
    )
    assert first_error(monkeypatch, "SLACK_API_URL", "slack.com/api") == (
        "SLACK_API_URL=slack.com/api has no scheme: write it as https://slack.com/api (or http://…)"
    )
    assert "start it with http://, https://, ws:// or wss://" in first_error(monkeypatch, "LETTA_BASE_URL", "ftp://h")
    assert "has no host" in first_error(monkeypatch, "LETTA_BASE_URL", "http://")
    assert "is empty" in first_error(monkeypatch, "LETTA_BASE_URL", " ")
    said = first_error(monkeypatch, "LETTA_BASE_URL", "user:pw-never-shown@letta:8283")
    assert said.startswith("LETTA_BASE_URL=***@letta:8283 has no scheme") and "pw-never-shown" not in said
    for url in ("http://localhost:8283", "https://api.letta.com", "ws://127.0.0.1:8284/ws", "wss://letta.example"):
        monkeypatch.setenv("LETTA_BASE_URL", url)
        assert load_settings().letta_base_url == url


def test_a_variable_that_is_not_json_is_named_and_the_config_file_is_blamed_only_for_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    said = first_error(monkeypatch, "SLACK_AGENTS", "notjson")
    assert said.startswith("SLACK_AGENTS is not JSON (Expecting value")
    assert """write it as SLACK_AGENTS='{"alice": {"display_name": "Alice", "icon_emoji": ":owl:"}}'""" in said
    Path("config.toml").write_text("port = 4000\n")
    assert first_error(monkeypatch, "SLACK_AGENTS", "notjson").startswith("SLACK_AGENTS is not JSON")
    Path("config.toml").write_text("port = \n")
    assert first_error(monkeypatch, "PORT", "4000").startswith("could not read the config file config.toml: ")


def test_a_letta_url_with_a_password_and_an_api_key_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", "https://me:pw-never-shown@letta.example")
    monkeypatch.setenv("LETTA_API_KEY", "key-1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [line] = caught.value.lines
    assert line.startswith("LETTA_BASE_URL carries a user and password, and LETTA_API_KEY is set")
    assert "pw-never-shown" not in line
    monkeypatch.delenv("LETTA_API_KEY")
    assert load_settings().letta_base_url == "https://me:pw-never-shown@letta.example", "a proxy's password alone"


def test_a_slack_api_url_with_a_user_and_password_is_refused_without_showing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Taken, every request to Slack failed in aiohttp (the bot token's Authorization header and the URL's
    credentials cannot both be sent): `socket` and `check` ended in a traceback."""
    said = first_error(monkeypatch, "SLACK_API_URL", "http://slackuser:pw-never-shown@slack.internal/api/")
    assert said.startswith("SLACK_API_URL=http://***@slack.internal/api/ carries a user and password"), said
    assert "Authorization" in said and "HTTPS_PROXY" in said and "pw-never-shown" not in said
    assert "pw-never-shown" not in first_error(monkeypatch, "SLACK_API_URL", "https://:pw-never-shown@slack.com/api/")
    # `check`'s words for a Slack it cannot reach show the URL as the logs do, whatever it holds.
    settings = Settings.model_construct(slack_api_url="http://slackuser:pw-never-shown@10.0.0.9/api/")
    said = slack_unreachable(settings, ConnectionRefusedError())
    assert said.startswith("cannot reach Slack at http://***@10.0.0.9/api/ (ConnectionRefusedError)"), said


@pytest.mark.parametrize("variable", ["SLACK_CONFIGURE_USERS", "SLACK_APPROVE_USERS"])
def test_user_lists_take_ids_as_slack_shows_them_and_refuse_what_is_not_one(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """`@alice` or an email granted nobody, silently; a mention copied from Slack (<@U0AAA>), a lower-cased id
    too, though they name someone."""
    monkeypatch.delenv("SLACK_APPROVE_USERS", raising=False)
    monkeypatch.setenv(variable, "<@U0AAA>, u0bbb <@W0CCC|carol>")
    assert getattr(load_settings(), variable.lower()) == ("U0AAA", "U0BBB", "W0CCC")
    for value in ("@alice", "alice@example.com", "U0AAA,#general"):
        said = first_error(monkeypatch, variable, value)
        assert said.startswith(f"{variable}: ") and "is not a Slack user id" in said and "Copy member ID" in said, said


def test_check_asks_slack_nothing_with_the_examples_placeholder_token() -> None:
    """A config.toml copied from config.example.toml and not yet edited: the settings line says the token is the
    placeholder; asking Slack with it added a second failure that blamed a revoked token or the connection."""
    import asyncio

    from bridge.checks import slack_checks

    settings = Settings(slack_bot_token="xoxb-...", slack_api_url="http://127.0.0.1:9/api/")
    [line] = [c.line() for c in asyncio.run(slack_checks(settings))]
    said = "SLACK_BOT_TOKEN is still the example's placeholder \"xoxb-...\", so Slack cannot be checked"
    assert line == f"FAIL slack: {said}"


def test_an_empty_variable_does_not_hide_the_config_files_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """docker-compose's `SLACK_BOT_TOKEN=${SLACK_BOT_TOKEN}` with the variable unset passes it empty: before, that
    hid config.toml's token (`serve` said it was missing, and to set it in config.toml, which had it)."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "bridge.toml"
    path.write_text('slack_bot_token = "xoxb-from-the-file"\nletta_api_key = "sk-from-the-file"\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    monkeypatch.setenv("LETTA_API_KEY", "")
    settings = load_settings()
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-from-the-file"
    assert settings.letta_api_key is not None and settings.letta_api_key.get_secret_value() == "sk-from-the-file"
    # Where empty means something, it is taken as given (an existing deployment's way to turn each off).
    for variable in ("LETTA_CONTEXT_PREFIX", "SLACK_SUGGESTED_PROMPTS", "SLACK_DONE_REACTION"):
        monkeypatch.setenv(variable, "")
    settings = load_settings()
    assert (settings.letta_context_prefix, settings.slack_suggested_prompts, settings.slack_done_reaction) == (
        "", (), ""
    )


@pytest.mark.parametrize(
    ("prefix", "said"),
    [
        ("[{name} in #{channel}] ", "{name} is no placeholder"),
        ("{0} says: ", "{0} is no placeholder"),
        ("[{user in #{channel}] ", "its braces do not pair"),
        ("{user.__class__} ", "{user.__class__} is no placeholder"),
    ],
)
def test_a_context_prefix_every_turn_would_fail_on_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, prefix: str, said: str
) -> None:
    """Before, `check` passed and every turn failed with 'an unexpected error' (a KeyError formatting it)."""
    line = first_error(monkeypatch, "LETTA_CONTEXT_PREFIX", prefix)
    assert line.startswith(f"LETTA_CONTEXT_PREFIX: {said}") and "{user} and {channel}" in line, line
    with monkeypatch.context() as patch:
        patch.setenv("LETTA_CONTEXT_PREFIX", "{{json}} {user!r} in {channel}: ")
        assert load_settings().letta_context_prefix == "{{json}} {user!r} in {channel}: "


def test_a_connect_timeout_of_infinity_is_a_settings_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    assert first_error(monkeypatch, "LETTA_CONNECT_TIMEOUT", "inf").startswith("LETTA_CONNECT_TIMEOUT")


@pytest.mark.parametrize(
    ("variable", "key", "value"),
    [
        ("LETTA_BASE_URL", "letta_base_url", "http://letta.internal:8283"),
        ("DATABASE_URL", "database_url", "sqlite:////srv/bridge/bridge.db"),
        ("SLACK_API_URL", "slack_api_url", "https://slack.example.com/api/"),
        ("SLACK_OAUTH_AUTHORIZE_URL", "slack_oauth_authorize_url", "https://slack.example.com/oauth/v2/authorize"),
    ],
)
def test_an_empty_url_variable_gives_way_to_the_files_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, variable: str, key: str, value: str
) -> None:
    """docker-compose's `LETTA_BASE_URL: ${LETTA_BASE_URL}` with the variable unset: before, every command stopped
    with 'LETTA_BASE_URL is empty' although config.toml had the address (README: an empty URL is no setting).
    Without a file, Slack's own URLs are their defaults; an empty Letta or database URL is still refused (revAA):
    Letta Cloud would be sent the key meant for another server, and a new, empty store opened."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "bridge.toml"
    path.write_text(f'{key} = "{value}"\n')
    monkeypatch.setenv(variable, "")
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    assert getattr(load_settings(), key).rstrip("/") == value.rstrip("/")
    monkeypatch.setenv(variable, "  ")  # revAF: blank is empty too
    assert getattr(load_settings(), key).rstrip("/") == value.rstrip("/")
    monkeypatch.setenv(variable, "")
    monkeypatch.delenv("BRIDGE_CONFIG")
    if key in ("letta_base_url", "database_url"):
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert any(line.startswith(variable) for line in caught.value.lines), caught.value.lines
    else:
        monkeypatch.delenv(variable)
        default = getattr(load_settings(), key)
        monkeypatch.setenv(variable, "")
        assert getattr(load_settings(), key) == default


def test_reaction_names_lose_their_colons_and_a_wrong_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SLACK_DONE_REACTION=:tada:` as the picker shows it: before, every turn's reactions.add said invalid_name."""
    monkeypatch.setenv("SLACK_DONE_REACTION", ":tada:")
    monkeypatch.setenv("SLACK_WORKING_REACTION", " ")
    settings = load_settings()
    assert (settings.slack_done_reaction, settings.slack_working_reaction) == ("tada", "")
    monkeypatch.setenv("SLACK_FAILED_REACTION", "party time")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert any("SLACK_FAILED_REACTION" in line and "not an emoji's name" in line for line in caught.value.lines)


@pytest.mark.parametrize(
    "variable",
    [
        "SLACK_THREAD_FOLLOW_UPS_EXCEPT",
        "SLACK_SHOW_REASONING_EXCEPT",
        "LETTA_CONVERSATIONS_EXCEPT",
        "LETTA_TOOLS_EXCEPT",
    ],
)
def test_channel_exceptions_take_ids_as_copied_and_refuse_a_channels_name(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Before, `#general` or a lower-cased id matched no channel, silently: the exception was never made."""
    monkeypatch.setenv(variable, "c0123abcd, <#C0456EFGH|incidents>")
    assert getattr(load_settings(), variable.lower()) == ("C0123ABCD", "C0456EFGH")
    monkeypatch.setenv(variable, "C0123ABCD #general")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert any(variable in line and "#general is not a Slack channel id" in line for line in caught.value.lines)
