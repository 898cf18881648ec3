"""app.json (the deploy button's manifest) agrees with the settings, the Procfile and the Postgres add-on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.app import POSTGRES_LOCK_CONNECTIONS
from bridge.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app() -> dict[str, Any]:
    return dict(json.loads((ROOT / "app.json").read_text()))


def test_every_variable_is_a_documented_setting_with_a_description(app: dict[str, Any]) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    example = (ROOT / "config.example.toml").read_text()
    for name, spec in app["env"].items():
        assert name in settings, f"{name} is not a setting"
        assert f"{name.lower()} =" in example, f"{name} is not documented in config.example.toml"
        assert len(spec["description"]) > 20, name
    assert "DATABASE_URL" not in app["env"], "the Postgres add-on sets DATABASE_URL"


def test_required_variables_are_the_ones_serve_needs_and_secrets_have_no_default(app: dict[str, Any]) -> None:
    env = app["env"]
    required = {name for name, spec in env.items() if spec.get("required")}
    assert required == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL"}
    for secret in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_API_KEY", "METRICS_TOKEN"):
        assert "value" not in env[secret], secret
    assert env["METRICS_TOKEN"]["generator"] == "secret"


def test_the_default_values_are_valid_settings(app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "tests")  # no config.toml here
    defaults = {name: spec["value"] for name, spec in app["env"].items() if "value" in spec}
    for name, value in defaults.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.log_format == "json" and settings.max_concurrent_turns == 4
    per_process = settings.database_pool_size + 1 + min(settings.max_concurrent_turns, POSTGRES_LOCK_CONNECTIONS)
    assert 2 * per_process <= 20, "two web processes must fit the essential-0 plan's 20 connections"


def test_postgres_add_on_web_formation_and_a_buildpack_that_can_install_us(app: dict[str, Any]) -> None:
    assert any(addon["plan"].startswith("heroku-postgresql:") for addon in app["addons"])
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if re.match(r"^\w+:", line)
    )
    assert procfile["web"].strip() == "python -m bridge serve"
    assert set(app["formation"]) <= set(procfile) and app["formation"]["web"]["quantity"] >= 1
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    assert ".[postgres]" in (ROOT / "requirements.txt").read_text().splitlines()
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
