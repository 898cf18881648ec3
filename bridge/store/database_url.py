"""DATABASE_URL: which backend it names, its file or its name shown without a password, checked before anything
is opened, and the store it opens."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bridge.store.base import Store, StoreError


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:` URL: `sqlite:///bridge.db` is the relative path bridge.db (config.py makes it
    absolute, from the config file's folder), `sqlite:////var/x.db` the absolute /var/x.db."""
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            return path or "bridge.db"
    raise StoreError(f"not a sqlite URL: {url}")


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file DATABASE_URL names when it does not exist yet (a read-only command must not create it)."""
    if not url.startswith("sqlite:"):
        return None
    path = sqlite_path(url)
    if path == ":memory:":
        return None
    file = Path(path).expanduser()
    return None if file.exists() else file


def database_name(url: str) -> str:
    """The database for people: a SQLite file's path, or a server's URL with its password masked."""
    return sqlite_path(url) if url.startswith("sqlite:") else display_url(url)


# Query parameters libpq (and asyncpg) take a password from: `?password=` in some providers' URLs.
PASSWORD_PARAMS = ("password", "sslpassword")


def display_url(url: str) -> str:
    """The URL with its passwords masked (in its user info, and a `?password=`), for logs and `check`."""
    parts = urlsplit(url)
    if query_passwords(url):
        query = [(k, "***" if k.lower() in PASSWORD_PARAMS else v) for k, v in parse_qsl(parts.query, True)]
        parts = parts._replace(query=urlencode(query, safe="*/:"))
        url = urlunsplit(parts)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def query_passwords(url: str) -> list[str]:
    """The passwords a URL's query gives (for the logs' masking)."""
    return [v for k, v in parse_qsl(urlsplit(url).query, True) if k.lower() in PASSWORD_PARAMS and v]


POSTGRES_SCHEMES = ("postgres://", "postgresql://")
POSTGRES_EXTRA = "pip install 'letta-slack-bridge[postgres]'"


class DatabaseUrlError(StoreError):
    """DATABASE_URL cannot be used by this installation (a scheme it does not know, or PostgreSQL without its
    driver): a settings problem, said before anything is opened."""


def _postgres_driver_installed() -> bool:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return False
    return True


# The files of the URL's own that asyncpg reads as it connects, with what each is.
TLS_FILES = {
    "sslrootcert": "the CA certificate the server's is checked against",
    "sslcrl": "the certificate revocation list",
    "sslcert": "the client certificate",
    "sslkey": "the client certificate's key",
}


def _missing_tls_file(url: str) -> str | None:
    """A file the URL names that asyncpg would read and that is not there, in words naming it: asyncpg says only
    "No such file or directory". The root certificate and revocation list are read where sslmode insists on TLS,
    the client certificate (and its key) wherever TLS may be used, as asyncpg does."""
    query = dict(parse_qsl(urlsplit(url).query))
    mode = query.get("sslmode", "prefer")
    read = ["sslcert", "sslkey"] if mode != "disable" and query.get("sslcert") else []
    read += ["sslrootcert", "sslcrl"] if mode in ("require", "verify-ca", "verify-full") else []
    for key in read:
        path = query.get(key)
        if path and not Path(path).is_file():
            where = "" if Path(path).is_absolute() else f" (a relative path starts in {Path.cwd()})"
            return (
                f"DATABASE_URL has {key}={path}, but no file is there{where}: put {TLS_FILES[key]} there, or "
                f"correct the path in DATABASE_URL"
            )
    return None


def check_database_url(url: str, files: bool = True) -> None:
    """Raise DatabaseUrlError, in plain words, when DATABASE_URL names nothing this installation can open;
    `files=False` leaves out the certificate files it names (`init` keeping a file's URL, on a machine where
    they may not be)."""
    if url.startswith("sqlite:"):
        return
    if url.startswith(POSTGRES_SCHEMES):
        # Never the parser's own words: they quote what it took for a port, which may be part of the password.
        try:
            if "@" in urlsplit(url).netloc.rpartition("@")[0]:  # asyncpg reads up to the first @, not the last
                raise DatabaseUrlError(
                    "DATABASE_URL cannot be read: its user name or password holds an @, which must be "
                    "percent-encoded there (@ as %40); the form is postgres://user:password@host:5432/database"
                )
            if "@" in url.split("://", 1)[-1] and "@" not in urlsplit(url).netloc:
                raise DatabaseUrlError(
                    "DATABASE_URL cannot be read: its user name or password holds a character that must be "
                    "percent-encoded there (# as %23, / as %2F, ? as %3F); the form is "
                    "postgres://user:password@host:5432/database"
                )
            urlsplit(url).port  # noqa: B018 - raises on a malformed host or port
        except ValueError:
            raise DatabaseUrlError(
                "DATABASE_URL cannot be read: its host or port is malformed; the form is "
                "postgres://user:password@host:5432/database (a password's own @ : / # ? written percent-encoded)"
            ) from None
        if not _postgres_driver_installed():
            raise DatabaseUrlError(
                "DATABASE_URL asks for PostgreSQL, but its driver (asyncpg) is not installed. Install the postgres "
                f"extra ({POSTGRES_EXTRA}; from a checkout: pip install -e '.[postgres]'), or set DATABASE_URL to "
                "sqlite:///path/to/bridge.db."
            )
        from bridge.store.postgres import connect_options

        connect_options(url)  # its sslmode and connect_timeout
        if files and (missing := _missing_tls_file(url)) is not None:
            raise DatabaseUrlError(missing)
        return
    if not url.strip():
        raise DatabaseUrlError(
            "DATABASE_URL is empty: write it as sqlite:///path/to/bridge.db or postgres://user:password@host:5432/"
            "database, set database_url in the config file, or leave the variable out for its default"
        )
    if "://" not in url:
        raise DatabaseUrlError(_no_scheme(url))
    scheme = url.split(":", 1)[0]
    raise DatabaseUrlError(
        f"DATABASE_URL uses the scheme {scheme!r}, which this bridge does not support; "
        "use sqlite:///path/to/bridge.db or postgres://user:password@host:5432/database"
    )


def _no_scheme(url: str) -> str:
    """A path or address given without its scheme, with the URL it was likely meant as (a password masked)."""
    _, at, host = url.rpartition("@")
    if at:
        return (
            f"DATABASE_URL=***@{host} has no scheme: for PostgreSQL write postgres://user:password@{host} "
            "(or, for a SQLite file, sqlite:///path/to/bridge.db)"
        )
    return (
        f"DATABASE_URL={url} has no scheme: for a SQLite file write sqlite:///{url} (or, for PostgreSQL, "
        "postgres://user:password@host:5432/database)"
    )


def open_store(
    url: str,
    *,
    pool_size: int = 5,
    lock_connections: int = 16,
    serving: bool = False,
    migrate: bool = True,
    alive_seconds: float = 30.0,
) -> Store:
    """The store for DATABASE_URL: `sqlite:///path` (the embedded default, one process) or `postgres://` /
    `postgresql://` (several processes; needs the postgres extra). A Postgres process uses up to `pool_size`
    connections for queries and `lock_connections` more, opened on demand, for the agent locks held during Letta
    sends; a `serving` one (serve, socket) renews its heartbeat every third of `alive_seconds` (an agent lock of a
    process whose heartbeat ran out is taken from it), and a one-shot command keeps none, so that opening an
    up-to-date database writes nothing. `migrate=False` (`check`) leaves the tables as they are, on either backend.
    A `serving` process holds a SQLite file for itself: a second one is refused."""
    check_database_url(url)
    if url.startswith(POSTGRES_SCHEMES):
        from bridge.store.postgres import PostgresStore

        return PostgresStore(
            url,
            pool_size=pool_size,
            lock_connections=lock_connections,
            migrate=migrate,
            alive_seconds=alive_seconds,
            serving=serving,
        )
    from bridge.store.sqlite import SqliteStore

    return SqliteStore(url, exclusive=serving, migrate=migrate)
