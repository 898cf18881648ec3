"""bridge/config_load.py refused_keys: which keys of a config file's text a load of it would refuse, each with
the line `load_settings` says of it; `init` leaves them out of the file it writes."""

from __future__ import annotations

from pathlib import Path

from bridge.config_load import refused_keys

FILE = Path("config.toml")
GIVEN = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s" * 32, "letta_base_url": "http://letta:8283"}


def test_unknown_keys_tables_and_bad_values_are_refused_and_the_rest_kept() -> None:
    keys = {**GIVEN, "port": "abc", "letta_group_runnr": "bridge", "slack": {"channel": "C1"}, "LOG_LEVEL": "info",
            "database_url": "mysql://db/bridge", "max_concurrent_turns": 8}
    refused = refused_keys(FILE, keys)
    assert set(refused) == {"port", "letta_group_runnr", "slack", "database_url"}, refused
    assert "did you mean letta_group_runner?" in refused["letta_group_runnr"]
    assert "a table" in refused["slack"]
    assert "port" in refused["port"] and "'abc'" in refused["port"]


def test_a_file_that_loads_has_nothing_refused() -> None:
    assert refused_keys(FILE, {**GIVEN, "port": 3000, "slack_thread_follow_ups": False}) == {}


def test_settings_that_only_together_cannot_be_are_said_under_no_key() -> None:
    refused = refused_keys(FILE, {**GIVEN, "slack_approve_by": "users"})
    assert list(refused) == [""] and "SLACK_APPROVE_USERS" in refused[""], refused
