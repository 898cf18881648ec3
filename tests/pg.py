"""A throwaway PostgreSQL server for the tests: the machine's own binaries, initdb in a temporary folder, a free
loopback port, trust authentication, no fsync. Run as root (as CI is), the server runs as the `postgres` user
(Debian's package creates it) or `nobody`, since PostgreSQL refuses to run as root.

    server = PgServer.find()          # None when no binaries are installed (Debian: apt-get install postgresql)
    server.start()
    url = server.create_database()    # postgresql://bridge@127.0.0.1:<port>/<fresh name>
    server.stop()
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NO_BINARIES = (
    "PostgreSQL binaries (initdb, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin; "
    "install them (Debian: apt-get install postgresql) to run the Postgres cases (.ci/run does)"
)
USER = "bridge"


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned folders."""
    initdb = shutil.which("initdb")
    if initdb:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").exists() and (folder / "postgres").exists():
            return folder
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """PostgreSQL will not run as root: use `postgres` (or `nobody`) when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self.root: Path | None = None
        self._user = _run_as()
        self._names = itertools.count(1)

    @classmethod
    def find(cls) -> PgServer | None:
        bindir = find_bindir()
        return cls(bindir) if bindir else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {"PATH": f"{self.bindir}:/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.root)}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True, text=True, check=check, env=env, cwd=str(self.root), timeout=120, **kwargs,  # type: ignore[call-overload]
        )

    def start(self) -> PgServer:
        self.root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync",
                  "--no-instructions")
        for attempt in range(3):
            # The port was free when chosen; another xdist worker's fake or server may take it before PostgreSQL
            # binds it (a worker's every Postgres test then errored at once): a fresh one is tried.
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                return self
            except RuntimeError as exc:
                if attempt == 2 or "already in use" not in str(exc):
                    raise
        return self

    def _pg_ctl_start(self) -> None:
        assert self.root is not None
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB"
        )
        done = self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-o", options,
                         "-w", "start", check=False)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{log}")

    def restart(self, down: float) -> None:
        """Stop the server as a platform's maintenance does (every session ended), stay down `down` seconds, then
        start it again on the same port with the same data."""
        assert self.root is not None
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        time.sleep(down)
        self._pg_ctl_start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql)
        return done.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
