"""A bad setting is said in one plain sentence: its name as the person wrote it (the environment's upper case,
config.toml's lower case), the value given (never a secret's), and what is allowed; every bad setting at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.config_errors import letta_path_problem, url_problem
from bridge.config_load import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.lower() in Settings.model_fields or name == "BRIDGE_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def errors(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.lines


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("PORT", "abc", "PORT must be a whole number from 0 to 65535; got 'abc'"),
        ("PORT", "70000", "PORT must be a whole number from 0 to 65535; got '70000'"),
        ("MAX_CONCURRENT_TURNS", "-1", "MAX_CONCURRENT_TURNS must be a whole number of at least 1; got '-1'"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR or CRITICAL; got 'LOUD'"),
        (
            "SLACK_THREAD_FOLLOW_UPS",
            "maybe",
            "SLACK_THREAD_FOLLOW_UPS must be true or false (or yes/no, on/off, 1/0); got 'maybe'",
        ),
        (
            "LETTA_READ_TIMEOUT",
            "1s",
            "LETTA_READ_TIMEOUT must be a number of seconds greater than 0, written without a unit; got '1s'",
        ),
        (
            "SLACK_WORKING_AFTER_SECONDS",
            "90",
            "SLACK_WORKING_AFTER_SECONDS must be a number of seconds from 0 to 60; got '90'",
        ),
        (
            "SLACK_TOKEN_ROTATION_MINUTES",
            "1.5",
            "SLACK_TOKEN_ROTATION_MINUTES must be a whole number of minutes from 1 to 720; got '1.5'",
        ),
        ("SLACK_LIVE_REPLIES", "fast", "SLACK_LIVE_REPLIES must be one of auto, stream or update; got 'fast'"),
        ("HTTP_INGRESS", "fork", "HTTP_INGRESS must be one of thread or process; got 'fork'"),
        ("SLACK_AGENTS", "[1]", "SLACK_AGENTS must be a JSON object, like "),
    ],
)
def test_a_bad_environment_value_is_one_plain_sentence(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    [line] = errors(monkeypatch, **{name: value})
    assert line.startswith(said), line
    assert "Input should" not in line and "valid" not in line


def test_every_bad_setting_is_said_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = errors(
        monkeypatch, PORT="abc", LOG_LEVEL="LOUD", SLACK_AGENTS="notjson", LETTA_BASE_URL="localhost:8283",
        DATABASE_URL="bridge.db",
    )
    assert [line.split()[0] for line in lines] == [
        "SLACK_AGENTS", "LETTA_BASE_URL=localhost:8283", "PORT", "LOG_LEVEL", "DATABASE_URL=bridge.db"
    ], lines


def test_a_config_file_value_is_named_as_its_key_and_the_environment_s_as_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("config.toml").write_text(
        'port = "abc"\nslack_thread_follow_ups = "maybe"\ndefault_target = 3\nletta_conversations_except = [1]\n'
        'slack_suggested_prompts = "one"\nmax_concurrent_turns = 0\nprot = 1\n'
    )
    lines = errors(monkeypatch, SLACK_THREAD_FOLLOW_UPS="often")
    assert lines == [
        "SLACK_THREAD_FOLLOW_UPS must be true or false (or yes/no, on/off, 1/0); got 'often'",
        "config.toml: letta_conversations_except must be a list of text, like [\"a\", \"b\"]; got [1]",
        "config.toml: default_target must be a list of text, like [\"a\", \"b\"]; got 3",
        "config.toml: max_concurrent_turns must be a whole number of at least 1; got 0",
        "config.toml: port must be a whole number from 0 to 65535; got 'abc'",
        "config.toml has a key the bridge does not know: prot (did you mean port?); every key is in "
        "config.example.toml.",
    ], lines
    monkeypatch.setenv("PORT", "4000")  # the environment wins: the file's bad port is not what is used
    assert not any(line.startswith("config.toml: port ") for line in errors(monkeypatch))


def test_a_secret_s_value_is_never_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("config.toml").write_text(
        'slack_bot_token = ["xoxb-never-shown"]\nslack_signing_secret = 12345678\nletta_api_key = {k = "sk-hidden"}\n'
        'slack_client_secret = true\ndatabase_url = ["postgres://u:pw-hidden@db/x"]\n'
    )
    lines = errors(monkeypatch, SLACK_APP_TOKEN="")
    said = "\n".join(lines)
    assert [line.split(" must ")[0] for line in lines] == [
        "config.toml: slack_bot_token", "config.toml: slack_signing_secret", "config.toml: slack_client_secret",
        "config.toml: letta_api_key", "config.toml: database_url",
    ], lines
    for secret in ("xoxb-never-shown", "12345678", "sk-hidden", "True", "true", "pw-hidden"):
        assert secret not in said, said


def test_a_url_s_password_is_masked_in_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    [line] = errors(monkeypatch, PORT="https://u:pw-hid@h")
    assert line.startswith("PORT must be a whole number") and "pw-hid" not in line and "***@h" in line, line


@pytest.mark.parametrize(
    "url", ["https://letta.example.com/?api_key=sk-in-the-query", "https://letta.example.com#sk-in-the-fragment"]
)
def test_a_letta_url_with_a_query_or_a_fragment_is_refused_without_saying_it_back(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """Every call appends its path to LETTA_BASE_URL: after a `?` or `#` it is no longer a path, so each call asked
    the same page. The URL was taken, and `check` printed it whole, a key in its query with it."""
    [line] = errors(monkeypatch, LETTA_BASE_URL=url, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s" * 32)
    assert line.startswith("LETTA_BASE_URL cannot have a query (?…) or a fragment (#…)"), line
    assert "write https://letta.example.com (the server's address only" in line and "sk-in-the" not in line, line


def test_an_agent_look_with_a_key_it_does_not_take_names_the_agent_and_the_keys_it_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [line] = errors(monkeypatch, SLACK_AGENTS='{"alice": {"icon": ":owl:"}}')
    assert line == "SLACK_AGENTS: alice has icon, which is none of display_name, icon_emoji or icon_url", line


@pytest.mark.parametrize(
    ("given", "level"), [("warn", "WARNING"), ("WARN", "WARNING"), ("fatal", "CRITICAL"), ("", "INFO"), (" ", "INFO")]
)
def test_a_log_level_the_logging_module_takes_still_starts(
    monkeypatch: pytest.MonkeyPatch, given: str, level: str
) -> None:
    """LOG_LEVEL=WARN (and FATAL) set the level before settings named the five levels, and a blank one (a compose
    file's `LOG_LEVEL: ${LOG_LEVEL}`) meant INFO, as a blank setting is unset; a deployment with one must still
    start, at that level."""
    monkeypatch.setenv("LOG_LEVEL", given)
    assert load_settings().log_level == level


def test_a_token_or_key_pasted_with_a_line_break_around_it_is_taken_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key ending in a newline (a file's, a copy's) went into every Letta call's header as it was: each command
    stopped with a 50-line traceback ("Forbidden control character"); a signing secret so ended refused every
    request Slack signed."""
    for name, value in {"LETTA_API_KEY": "sk-abc\n", "SLACK_BOT_TOKEN": " xoxb-1\r\n",
                        "SLACK_SIGNING_SECRET": "s" * 32 + "\n"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.letta_api_key is not None and settings.letta_api_key.get_secret_value() == "sk-abc"
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-1"
    assert settings.slack_signing_secret is not None and settings.slack_signing_secret.get_secret_value() == "s" * 32


def test_a_line_break_inside_a_key_is_one_plain_sentence_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    given = {"LETTA_API_KEY": "sk-abc\nsk-def", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s" * 32}
    [line] = errors(monkeypatch, **given)
    assert line == (
        "LETTA_API_KEY holds a line break or another control character inside it: set it to the value alone"
    )


def test_a_default_target_that_names_nothing_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`DEFAULT_TARGET=garbage`: `check` said FAIL but `serve` started, and every direct message then failed, the
    reason in the log only."""
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s" * 32, "LETTA_API_KEY": "sk-1"}
    [line] = errors(monkeypatch, DEFAULT_TARGET="garbage", **base)
    assert line.startswith("DEFAULT_TARGET must be one group id (group-<uuid>) or agent ids") and "'garbage'" in line
    agents = "agent-1d31f591-6414-4aa7-9fb2-3d0e7082a41e, agent-local-3a30ad74-0ed7-464d-b24f-605684f0d67f"
    for good in ("group-3a30ad74-0ed7-464d-b24f-605684f0d67f", agents):
        monkeypatch.setenv("DEFAULT_TARGET", good)
        assert load_settings().default_target


def test_a_default_target_listing_an_agent_twice_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accepted at start, then every direct message failed ("an agent is listed twice"): said with the settings."""
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s" * 32, "LETTA_API_KEY": "sk-1"}
    agent, other = "agent-1d31f591-6414-4aa7-9fb2-3d0e7082a41e", "agent-2a295a94-fb48-4739-8bc1-a06c1a881e2b"
    [line] = errors(monkeypatch, DEFAULT_TARGET=f"{agent} {other} {agent}", **base)
    assert line == f"DEFAULT_TARGET lists {agent} twice; each agent can answer once per turn"


@pytest.mark.parametrize(
    ("look", "said"),
    [
        ('{"icon_url": "owl.png"}', "SLACK_AGENTS: alice's icon_url must be an image's http(s) address; got 'owl.png'"),
        ('{"icon_url": "ftp://x.test/o.png"}', "SLACK_AGENTS: alice's icon_url must be an image's http(s) address"),
        ('{"icon_emoji": "owl face"}', "SLACK_AGENTS: alice's icon_emoji must be an emoji's name, such as :owl:"),
    ],
)
def test_an_agent_look_slack_cannot_show_is_refused_naming_the_agent(
    monkeypatch: pytest.MonkeyPatch, look: str, said: str
) -> None:
    """Slack takes such a look without an error and shows the app's own icon: the operator would never learn why."""
    [line] = errors(monkeypatch, SLACK_AGENTS=f'{{"alice": {look}}}')
    assert line.startswith(said), line


def test_an_emoji_typed_without_colons_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_AGENTS", '{"alice": {"icon_emoji": "owl"}, "bob": {"icon_emoji": ":+1::skin-tone-3:"}}')
    agents = Settings().slack_agents  # type: ignore[call-arg]
    assert agents["alice"].icon_emoji == ":owl:" and agents["bob"].icon_emoji == ":+1::skin-tone-3:"


def test_a_bad_file_value_behind_an_empty_variable_is_named_as_the_file_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text("letta_max_turns = 0\n")
    monkeypatch.setenv("LETTA_MAX_TURNS", "")  # docker-compose's ${LETTA_MAX_TURNS} while it is unset
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines == [
        "config.toml: letta_max_turns must be a whole number from 1 to 50; got 0"
    ], caught.value.lines


def test_a_bad_file_url_behind_an_empty_variable_is_named_as_the_file_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text('slack_api_url = "slack.com/api"\n')
    monkeypatch.setenv("SLACK_API_URL", "")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [line] = caught.value.lines
    assert line.startswith("config.toml: slack_api_url"), line


def test_an_empty_database_url_variable_is_not_said_empty_when_the_file_sets_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another setting refused: the lines must be that one's only. DATABASE_URL= with database_url in config.toml is
    the file's value (README: an empty variable does not hide the file's value), yet it was said empty."""
    (tmp_path / "config.toml").write_text('database_url = "sqlite:///x.db"\n')
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("PORT", "abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines == ["PORT must be a whole number from 0 to 65535; got 'abc'"], caught.value.lines


@pytest.mark.parametrize(
    "url", ["https://gateway.example.com/@team/letta", "https://proxyuser:pw@gateway.example.com/@team/letta"]
)
def test_an_at_sign_in_the_letta_url_path_is_not_taken_for_a_password(url: str) -> None:
    """An @ after the host is no user or password (the check of a password's raw / ? # read up to the last @)."""
    settings = Settings(letta_base_url=url)
    assert settings.letta_base_url == url


def test_an_at_sign_in_the_slack_api_url_path_is_not_taken_for_a_password() -> None:
    settings = Settings(slack_api_url="https://slack-proxy.example.com/@ops/api/")
    assert settings.slack_api_url == "https://slack-proxy.example.com/@ops/api/"


URL_SCHEMES = ("http", "https", "ws", "wss")


def test_the_v1_advice_for_a_url_with_an_at_in_its_path_names_its_host() -> None:
    """_masked takes everything before the URL's last @ for a user and password, path included: the admin is told
    to write https://***@team/letta, an address with no host."""
    said = letta_path_problem("LETTA_BASE_URL", "https://gateway.example/@team/letta/v1")
    assert said is not None
    assert "write https://gateway.example/@team/letta " in said, said


def test_a_mistyped_port_before_an_at_in_the_path_is_called_a_port_not_a_password() -> None:
    """No user or password here: the port is mistyped (8O83), but the words ask to percent-encode a password."""
    said = url_problem("LETTA_BASE_URL", "https://gateway.example:8O83/@team/letta", URL_SCHEMES)
    assert said is not None and "port that is not a number" in said, said


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://localhost:82830", "has port 82830, which is not a port (1 to 65535)"),
        ("http://[::1]:99999", "has port 99999, which is not a port (1 to 65535)"),
        ("http://letta server:8283", "has a space in its host"),
        ("http://u:p w/x@letta.example.com:1", "has a user or password holding a space"),
        ("http://host:abc", "has a port that is not a number"),
    ],
)
def test_a_url_s_port_or_host_is_blamed_for_what_is_wrong_with_it(url: str, words: str) -> None:
    """Found by a review (revAW): a port out of range was called "not a number", and a space in the host was blamed
    on a user or password the URL did not have."""
    said = url_problem("LETTA_BASE_URL", url, ("http", "https"))
    assert said is not None and words in said, said
