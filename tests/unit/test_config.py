from __future__ import annotations

import pytest

from bridge.config import Settings, SettingsError, load_settings, missing


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "LETTA_API_KEY", "LETTA_BASE_URL",
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


def test_invalid_values_and_a_missing_config_file_are_plain_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_GROUP_RUNNER", "sometimes")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert err.value.lines[0].startswith("LETTA_GROUP_RUNNER")
    monkeypatch.delenv("LETTA_GROUP_RUNNER")
    monkeypatch.setenv("BRIDGE_CONFIG", "/nonexistent/bridge.toml")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "does not exist" in err.value.lines[0]


def test_secrets_never_print() -> None:
    settings = Settings(slack_bot_token="xoxb-secret-1", letta_api_key="letta-key-2")
    assert "xoxb-secret-1" not in repr(settings) and "letta-key-2" not in str(settings)
    assert set(settings.secrets()) == {"xoxb-secret-1", "letta-key-2"}
