"""DATABASE_URL is judged before anything is opened: a scheme the bridge does not know, or PostgreSQL without its
driver (the postgres extra), is a settings problem said in plain words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.config_file import absolute_sqlite_url
from bridge.settings_secrets import secrets
from bridge.store import DatabaseUrlError, StoreError, check_database_url, open_store


def test_sqlite_and_postgres_urls_pass() -> None:
    for url in ("sqlite:///bridge.db", "sqlite:////var/lib/bridge.db", "postgres://u:p@h/db", "postgresql://h/db"):
        check_database_url(url)


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(DatabaseUrlError, match="scheme 'mysql'"):
        open_store("mysql://x")


def test_postgres_without_asyncpg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` now fails as when it is not installed
    with pytest.raises(DatabaseUrlError, match=r"pip install 'letta-slack-bridge\[postgres\]'") as raised:
        open_store("postgres://u:p@127.0.0.1/db")
    assert isinstance(raised.value, StoreError)
    check_database_url("sqlite:///bridge.db")


def test_a_relative_sqlite_path_starts_in_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = Path("/srv/bridge")
    assert absolute_sqlite_url("sqlite:///bridge.db", folder) == "sqlite:////srv/bridge/bridge.db"
    assert absolute_sqlite_url("sqlite:///data/b.db", folder) == "sqlite:////srv/bridge/data/b.db"
    for unchanged in ("sqlite:////var/b.db", "sqlite:///:memory:", "postgres://u:p@h/db"):
        assert absolute_sqlite_url(unchanged, folder) == unchanged
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "bridge.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BRIDGE_CONFIG", "conf/bridge.toml")
    assert Settings().database_url == f"sqlite:///{tmp_path}/conf/bridge.db"
    monkeypatch.delenv("BRIDGE_CONFIG")
    assert Settings().database_url == f"sqlite:///{tmp_path}/bridge.db"


@pytest.mark.parametrize("password", ["s3cr#et", "ab/cd", "pa?ss", "12#tail"])
def test_a_password_with_a_character_to_encode_is_said_so_and_never_shown(password: str) -> None:
    """urllib read `postgres://bridge:s3cr#et@…` as the host `bridge` and the port `s3cr`, and its error quoted that
    part of the password ("Port could not be cast to integer value as 's3cr'"), to stderr and the platform's logs;
    `12#tail` even read as a valid port."""
    with pytest.raises(DatabaseUrlError) as raised:
        check_database_url(f"postgres://bridge:{password}@db.example.com:5432/bridge")
    said = str(raised.value)
    assert "%23" in said and "percent-encoded" in said
    assert "'" not in said and "bridge:" not in said and "db.example.com" not in said, said  # nothing of the URL


def test_a_malformed_port_is_said_without_the_parsers_words() -> None:
    with pytest.raises(DatabaseUrlError, match="host or port is malformed") as raised:
        check_database_url("postgres://db.example.com:54x2/bridge")
    assert "54x2" not in str(raised.value)


@pytest.mark.parametrize("password", ["pa@ss", "@start", "end@"])
def test_a_password_holding_an_at_sign_is_said_to_be_encoded(password: str) -> None:
    """revAB: Python reads `postgres://u:pa@ss@host` up to the last @, asyncpg up to the first: the bridge showed
    the right host while the connection looked up the host `ss@host` ("Name or service not known")."""
    with pytest.raises(DatabaseUrlError) as raised:
        check_database_url(f"postgres://bridge:{password}@db.example.com:5432/bridge")
    said = str(raised.value)
    assert "%40" in said and password not in said


def test_a_password_in_the_query_is_masked_where_the_url_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """revAB: some providers' URLs give the password as `?password=`; `check`, the start line and open errors
    printed it in clear."""
    from bridge.store.database_url import database_name

    url = "postgresql://bridge@db.example.com/bridge?password=Sup3rSecretPw&sslmode=require"
    assert database_name(url) == "postgresql://bridge@db.example.com/bridge?password=***&sslmode=require"
    monkeypatch.setenv("DATABASE_URL", url)
    assert "Sup3rSecretPw" in secrets(Settings())  # masked in every log line


def test_an_empty_database_url_is_said_to_be_empty() -> None:
    """revAD: an empty DATABASE_URL (docker-compose's ${DATABASE_URL} unset, no config file) was worded
    'DATABASE_URL= has no scheme: for a SQLite file write sqlite:///'."""
    with pytest.raises(DatabaseUrlError) as raised:
        check_database_url("")
    assert str(raised.value).startswith("DATABASE_URL is empty:") and "config file" in str(raised.value)
