"""A certificate file DATABASE_URL names (sslrootcert=, and sslcrl=, sslcert=, sslkey=) that is not there is said at
start naming the setting, the key and the path: the connection said only "[Errno 2] No such file or directory",
which names neither, long after a start that looked fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.store import DatabaseUrlError, check_database_url


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_a_missing_root_certificate_is_refused_naming_its_path(tmp_path: Path, mode: str) -> None:
    missing = tmp_path / "rds-ca.pem"
    with pytest.raises(DatabaseUrlError) as err:
        check_database_url(f"postgres://u:pw@db.example.com/bridge?sslmode={mode}&sslrootcert={missing}")
    assert "DATABASE_URL" in str(err.value) and f"sslrootcert={missing}" in str(err.value)
    assert "pw" not in str(err.value).replace(str(tmp_path), "")


def test_a_missing_client_certificate_is_refused_naming_its_path(tmp_path: Path) -> None:
    """A client certificate is read whenever TLS may be used (sslmode other than disable, prefer by default)."""
    missing = tmp_path / "client.crt"
    with pytest.raises(DatabaseUrlError, match=f"sslcert={missing}"):
        check_database_url(f"postgres://u@db.example.com/bridge?sslcert={missing}")


def test_certificate_files_that_are_there_or_unread_are_taken(tmp_path: Path) -> None:
    """A root certificate is read only where sslmode insists on TLS; with sslmode=disable none is read at all."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    check_database_url(f"postgres://u@db.example.com/bridge?sslmode=verify-full&sslrootcert={ca}")
    check_database_url(f"postgres://u@db.example.com/bridge?sslmode=prefer&sslrootcert={tmp_path / 'gone.pem'}")
    check_database_url(f"postgres://u@db.example.com/bridge?sslmode=disable&sslcert={tmp_path / 'gone.crt'}")
