"""DATABASE_URL is judged before anything is opened: a scheme the bridge does not know, or PostgreSQL without its
driver (the postgres extra), is a settings problem said in plain words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.config_file import absolute_sqlite_url
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
