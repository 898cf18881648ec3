"""Exit status as README says: 0 success, 1 a check or lookup failed, 2 missing or invalid settings; per command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import REPO, base_env, free_port, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

COMMANDS = (("serve",), ("socket",), ("check",), ("channels", "list"), ("channels", "connect", "C0123ABC", "group-x"))


def errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unsupported_database_url_is_a_settings_error(command: tuple[str, ...], tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", DATABASE_URL="mysql://x",
                   SLACK_APP_TOKEN="xapp-1")
    done = run_cli(env, *command, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert "DATABASE_URL uses the scheme 'mysql'" in line and "sqlite:///" in line
    assert list(tmp_path.iterdir()) == [], "nothing is created"


@pytest.mark.parametrize(("url", "said"), [
    ("postgres://bridge:pw-never-shown@[bad/x", "DATABASE_URL cannot be read"),
    ("postgres://bridge:pw-never-shown@h:port/x", "DATABASE_URL cannot be read"),
    ("postgres://bridge:pw-never-shown@127.0.0.1:9/x?sslmode=bogus", "DATABASE_URL has sslmode=bogus"),
])
def test_a_malformed_postgres_url_is_a_settings_error(url: str, said: str, tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", DATABASE_URL=url)
    for command in (("serve",), ("check",)):
        done = run_cli(env, *command, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        [line] = errors(done)
        assert said in line and "pw-never-shown" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_letta_url_without_a_scheme_is_a_settings_error(command: tuple[str, ...], tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "localhost:8283", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-1")
    done = run_cli(env, *command, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert errors(done) == [
        "error: LETTA_BASE_URL=localhost:8283 has no scheme: write it as http://localhost:8283 (or https://…, ws://… or wss://…)"
    ]
    assert list(tmp_path.iterdir()) == [], "nothing is created"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_encryption_key_that_cannot_work_is_a_settings_error(command: tuple[str, ...], tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-1",
                   SLACK_CLIENT_ID="1.2", SLACK_CLIENT_SECRET="s", BRIDGE_ENCRYPTION_KEY="key-never-shown")
    done = run_cli(env, *command, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert line.startswith("error: BRIDGE_ENCRYPTION_KEY is not a Fernet key") and "Fernet.generate_key()" in line
    assert "key-never-shown" not in done.stdout + done.stderr


def test_oauth_settings_missing_point_to_the_workspaces_doc_not_init(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", SLACK_CLIENT_ID="1.2",
                   SLACK_CLIENT_SECRET="s")
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert [line.split(":")[1] for line in errors(done)] == [" missing BRIDGE_ENCRYPTION_KEY"]
    assert "docs/workspaces.md" in done.stderr and "Run `python -m bridge init`" not in done.stderr


def test_check_with_settings_missing_exits_2_and_names_each(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, "https://api.letta.com", tmp_path / "b.db")
        del env["SLACK_SIGNING_SECRET"]
        done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL settings:")]
    assert [line.split(":")[1].strip() for line in failed] == ["missing SLACK_SIGNING_SECRET", "missing LETTA_API_KEY"]
    assert "python -m bridge init" in done.stderr


def test_check_with_everything_set_but_a_failing_connection_exits_1(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "b.db")
        done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ok   settings:" in done.stdout and "FAIL letta:" in done.stdout


BLOCK_ASYNCPG = "import sys; sys.modules['asyncpg'] = None; from bridge.cli import main; sys.exit(main())"


@pytest.mark.parametrize("command", [("serve",), ("check",), ("channels", "list")], ids=" ".join)
def test_postgres_without_the_extra_says_how_to_install_it(command: tuple[str, ...], tmp_path: Path) -> None:
    """An installation without the postgres extra (asyncpg made unimportable) and a postgres:// DATABASE_URL."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db",
                   DATABASE_URL="postgres://bridge:pw-never-shown@127.0.0.1:9/bridge")
    done = subprocess.run([sys.executable, "-c", BLOCK_ASYNCPG, *command], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert "asyncpg" in line and "pip install 'letta-slack-bridge[postgres]'" in line
    assert "pw-never-shown" not in done.stdout + done.stderr


def test_serve_on_sqlite_runs_without_the_postgres_extra(tmp_path: Path) -> None:
    """README's set-up-and-run installs `-e .`, without asyncpg: serve on the default SQLite file must start (a
    module of the retention pass imported the Postgres helpers at the top, and serve died at import)."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        port = free_port()
        env = dict(base_env(slack.api_url, letta.base_url, tmp_path / "b.db"), PORT=str(port), HOST="127.0.0.1")
        proc = subprocess.Popen([sys.executable, "-c", BLOCK_ASYNCPG, "serve"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            status, deadline = 0, time.monotonic() + 20
            while status != 200 and proc.poll() is None and time.monotonic() < deadline:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else status
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out


INIT = ("init", "--non-interactive", "--config", "c.toml", "--letta-base-url", "https://letta.example.com",
        "--public-url", "https://bridge.example.com")  # revV: init asked Slack, then stopped with a traceback


@pytest.mark.parametrize("command", (*COMMANDS, INIT), ids=" ".join)
def test_an_unusable_proxy_variable_is_a_settings_error(command: tuple[str, ...], tmp_path: Path) -> None:
    """Every connection takes the environment's proxy: one the bridge cannot speak to stops it at once, named."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-1",
                   HTTPS_PROXY="socks5://me:pw-never-shown@10.0.0.1:1080")
    done = run_cli(env, *command, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert line.startswith("error: HTTPS_PROXY names a socks5:// proxy") and "http://host:port" in line
    assert "pw-never-shown" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is created"


def test_output_cut_short_by_its_reader_ends_without_a_traceback(tmp_path: Path) -> None:
    """revV: `python -m bridge check | head -1` printed a BrokenPipeError traceback once head had its line."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        check = subprocess.Popen(
            [sys.executable, "-m", "bridge", "check"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert check.stdout is not None and check.stderr is not None
        check.stdout.readline()
        check.stdout.close()  # as `head -1` does once it has its line
        stderr = check.stderr.read().decode()
        check.wait(60)
    assert "Traceback" not in stderr, stderr
