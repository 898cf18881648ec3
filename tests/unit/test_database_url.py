"""DATABASE_URL is judged before anything is opened: a scheme the bridge does not know, or PostgreSQL without its
driver (the postgres extra), is a settings problem said in plain words."""

from __future__ import annotations

import sys

import pytest

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
