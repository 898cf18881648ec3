"""Settings as README and docs/operations.md describe them: a value pasted with whitespace around it, a blank
variable, a URL the bridge cannot use, more of a list than Slack shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config_load import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "LETTA_API_KEY", "LETTA_BASE_URL",
                 "DATABASE_URL", "BRIDGE_CONFIG", "PORT", "SLACK_API_URL", "LETTA_GROUP_RUNNER", "DEFAULT_TARGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


@pytest.mark.parametrize("url", ["sqlite:///bridge.db\n", "sqlite:///bridge.db ", " sqlite:///bridge.db"])
def test_a_database_url_with_whitespace_pasted_around_it_is_the_same_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> None:
    """A DATABASE_URL pasted with a line break or a space around it (a Kubernetes secret made with `echo`, a
    .env line with a trailing space) is taken without it, as LETTA_BASE_URL is: kept, it opened (and `serve`
    created) a new, empty `bridge.db\\n` beside the real one, every channel binding gone with no error."""
    monkeypatch.setenv("DATABASE_URL", url)
    assert load_settings().database_url == f"sqlite:///{tmp_path / 'bridge.db'}"


def test_a_postgres_database_url_with_a_trailing_line_break_is_the_same_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same for Postgres, where `serve` failed later with 'database "bridge\\n" does not exist', which blamed
    the server, not the setting's stray line break."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abc")
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@db.example.com:5432/bridge\n")
    assert load_settings().database_url == "postgres://u:pw@db.example.com:5432/bridge"


@pytest.mark.parametrize("variable", ["SLACK_BOT_TOKEN", "LETTA_API_KEY", "METRICS_TOKEN"])
def test_a_blank_token_variable_does_not_hide_the_config_files_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    """README: an empty variable for a token, key or URL is no setting and does not hide the file's value. One
    holding only a space (a compose file's `" ${VAR}"`, a .env line `KEY= `) is blank, so the same: it hid the
    file's value, `serve` said 'missing SLACK_BOT_TOKEN' with the token in config.toml, and METRICS_TOKEN's
    protection silently went."""
    path = tmp_path / "config.toml"
    path.write_text(
        'slack_bot_token = "xoxb-1-2-abc"\nslack_signing_secret = "abc"\nletta_base_url = "http://localhost:8283"\n'
        'letta_api_key = "sk-let-1"\nmetrics_token = "m3trics"\n'
    )
    path.chmod(0o600)
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    monkeypatch.setenv(variable, " ")
    settings = load_settings()
    assert getattr(settings, variable.lower()) is not None


def _oauth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abc")
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283")
    monkeypatch.setenv("SLACK_CLIENT_ID", "1234.5678")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("BRIDGE_ENCRYPTION_KEY", Fernet.generate_key().decode())


@pytest.mark.parametrize(
    "uri",
    [
        "bridge.example.com/slack/oauth_redirect",  # no scheme: Slack refuses the install (bad_redirect_uri)
        "ftp://bridge.example.com/slack/oauth_redirect",
    ],
)
def test_a_redirect_uri_the_install_cannot_come_back_to_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    """SLACK_REDIRECT_URI is a URL like SLACK_API_URL, refused at start (OAuth on) without a scheme Slack takes. Any
    text was taken, and every workspace's install then failed at Slack, long after the start."""
    _oauth_env(monkeypatch)
    monkeypatch.setenv("SLACK_REDIRECT_URI", uri)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert any("SLACK_REDIRECT_URI" in line for line in err.value.lines)


@pytest.mark.parametrize(
    "uri",
    [
        "https://bridge.example.com/slack/oauth_redirect",
        "https://example.com/bridge/slack/oauth_redirect ",
        "https://bridge.example.com/oauth/callback",  # a proxy in front maps it onto /slack/oauth_redirect
    ],
)
def test_a_redirect_uri_to_the_path_the_bridge_answers_is_taken(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Behind a proxy, the public path may differ from the bridge's /slack/oauth_redirect (more before it, or a
    path the proxy maps onto it): its path is not checked."""
    _oauth_env(monkeypatch)
    monkeypatch.setenv("SLACK_REDIRECT_URI", uri)
    assert load_settings().slack_redirect_uri == uri.strip()


def test_more_suggested_prompts_than_slack_shows_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/sessions.md: SLACK_SUGGESTED_PROMPTS holds at most 4. A fifth was taken at start and silently never
    offered (sessions.suggest cut to 4); like every other bad value it is refused, by name."""
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283")
    monkeypatch.setenv("SLACK_SUGGESTED_PROMPTS", "one|two|three|four|five")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert any("SLACK_SUGGESTED_PROMPTS" in line and "at most 4" in line for line in err.value.lines)


def test_more_suggested_prompts_in_the_config_file_are_refused_by_its_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same for config.toml's list, named as the file writes it; four are taken."""
    path = tmp_path / "config.toml"
    path.write_text('letta_base_url = "http://localhost:8283"\nslack_suggested_prompts = ["a", "b", "c", "d", "e"]\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(path))
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert any("slack_suggested_prompts" in line and "at most 4" in line for line in err.value.lines)
    monkeypatch.setenv("SLACK_SUGGESTED_PROMPTS", "a|b|c|d")
    assert load_settings().slack_suggested_prompts == ("a", "b", "c", "d")


def test_without_oauth_a_leftover_redirect_uri_stops_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_REDIRECT_URI is read only with OAuth on: a leftover value in a shared .env does not stop a
    single-workspace or Socket Mode bridge from starting (second reader secLC)."""
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abc")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283")
    monkeypatch.setenv("SLACK_REDIRECT_URI", "bridge.example.org/oauth/callback")
    assert load_settings().slack_redirect_uri == "bridge.example.org/oauth/callback"
