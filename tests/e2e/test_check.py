"""`python -m bridge check` judges what a person at the terminal must act on: Slack scopes as the manifest asks
for them (required ones fail, optional ones warn), in sentences written for that person."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bridge.manifest import SCOPES
from bridge.store import open_store
from bridge.store.schema import SQLITE_MIGRATIONS
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer
from tests.unit.old_databases import old_sqlite

ALL_SCOPES = [s.name for s in SCOPES]
LATEST = len(SQLITE_MIGRATIONS)  # the schema version this bridge migrates to


def check_with_scopes(scopes: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    with FakeSlack(scopes=",".join(scopes)) as slack, FakeLetta(version="0.16.8") as letta:
        done = run_cli(base_env(slack.api_url, letta.base_url, tmp_path / "b.db"), "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    return done.returncode, [line for line in done.stdout.splitlines() if line.split(":")[0].endswith("slack scopes")]


@pytest.mark.parametrize("lacking", ["commands", "channels:history", "groups:history", "im:history", "groups:read"])
def test_a_missing_required_scope_fails(lacking: str, tmp_path: Path) -> None:
    code, lines = check_with_scopes([s for s in ALL_SCOPES if s != lacking], tmp_path)
    assert code == 1
    [line] = lines
    assert line.startswith(f"FAIL slack scopes: missing {lacking} (") and "reinstall the app" in line


def test_only_the_optional_customize_scope_missing_warns_and_passes(tmp_path: Path) -> None:
    code, lines = check_with_scopes([s for s in ALL_SCOPES if s != "chat:write.customize"], tmp_path)
    assert code == 0, lines
    [line] = lines
    assert line.startswith("warn slack scopes: chat:write.customize (optional) is not granted")
    assert "agent's name in bold" in line


def test_an_install_without_group_dm_history_still_passes_with_a_warning(tmp_path: Path) -> None:
    """An app installed before the manifest asked for mpim:history keeps working; check says what it misses."""
    code, lines = check_with_scopes([s for s in ALL_SCOPES if s != "mpim:history"], tmp_path)
    assert code == 0, lines
    [line] = lines
    assert line.startswith("warn slack scopes: mpim:history (optional) is not granted")
    assert "group DM" in line and "reinstall the app" in line


def test_every_scope_of_the_manifest_passes_and_extra_ones_do_no_harm(tmp_path: Path) -> None:
    code, lines = check_with_scopes([*ALL_SCOPES, "mpim:read"], tmp_path)
    assert code == 0 and lines == [f"ok   slack scopes: all {len(ALL_SCOPES)} the manifest asks for"]


def check_for_socket_mode(app_token: str, tmp_path: Path) -> tuple[int, list[str]]:
    """`check` as README's Socket Mode section sets a bridge up: SLACK_APP_TOKEN, no signing secret."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN=app_token)
        del env["SLACK_SIGNING_SECRET"]
        done = run_cli(env, "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout.splitlines()


def test_socket_mode_needs_no_signing_secret_and_its_app_token_is_checked(tmp_path: Path) -> None:
    code, lines = check_for_socket_mode("xapp-test-token", tmp_path)
    assert code == 0, lines
    assert "ok   settings: everything `socket` needs is set" in lines
    assert "ok   socket mode: SLACK_APP_TOKEN accepted (apps.connections.open)" in lines
    assert not any("SIGNING_SECRET" in line for line in lines if line.startswith("FAIL"))


def test_a_refused_app_token_fails_the_check_in_the_words_socket_would_use(tmp_path: Path) -> None:
    code, lines = check_for_socket_mode("xapp-revoked", tmp_path)
    assert code == 1, lines
    [line] = [line for line in lines if line.startswith("FAIL")]
    assert line.startswith("FAIL socket mode: Slack refused SLACK_APP_TOKEN (invalid_auth)") and "App-Level" in line


def test_check_on_an_empty_postgres_database_creates_nothing(pg_server: PgServer, tmp_path: Path) -> None:
    """`check` promises to create nothing; on Postgres it ran the migrations, so pointing it at the wrong database
    (or running a newer checkout's `check` against production) created or upgraded the bridge's tables there."""
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DATABASE_URL=url)
        done = run_cli(env, "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.split(":")[0].endswith(" database")]
    assert line.startswith("warn database:") and "no tables yet" in line, line
    assert done.returncode == 0, done.stdout
    assert pg_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'", name) == "0"


def test_a_postgres_url_naming_no_or_a_wrong_database_says_which_one_was_looked_for(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """`postgres://user@host:5432` (the database left out) failed with "that database does not exist", naming
    none: PostgreSQL had looked for one named after the user, which the URL does not show."""
    base = pg_server.url().rsplit("/", 1)[0]  # postgresql://bridge@127.0.0.1:<port>
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        for url, name in ((base, "bridge"), (f"{base}/bridgee", "bridgee")):
            env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DATABASE_URL=url)
            done = run_cli(env, "check", cwd=tmp_path)
            [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL database")]
            assert done.returncode == 1 and f'database "{name}" does not exist' in line, line
            assert "postgres://user:password@host:5432/<database>" in line, line


def test_sslmode_require_on_a_server_without_tls_says_what_to_change(pg_server: PgServer, tmp_path: Path) -> None:
    """asyncpg's 'PostgreSQL server at "…" rejected SSL upgrade' was the whole line: true, but not what to do."""
    url = pg_server.create_database() + "?sslmode=require"
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DATABASE_URL=url)
        done = run_cli(env, "check", cwd=tmp_path)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL database")]
    assert done.returncode == 1 and "does not offer TLS" in line and "sslmode=prefer" in line, line


def test_check_looks_up_the_default_target_direct_messages_go_to(tmp_path: Path) -> None:
    """DEFAULT_TARGET was not checked: `DEFAULT_TARGET=alice` (a name, not an id) or an agent Letta lacks passed
    every line, and only the first direct message found out."""
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        absent = "agent-" + "0" * 8 + "-0000-4000-8000-" + "0" * 12
        named = run_cli(dict(env, DEFAULT_TARGET="alice"), "check", cwd=tmp_path)  # a name: a settings error
        assert named.returncode == 2 and "DEFAULT_TARGET must be one group id" in named.stderr, named.stderr
        done = run_cli(dict(env, DEFAULT_TARGET=absent), "check", cwd=tmp_path)
        [line] = [line for line in done.stdout.splitlines() if line.startswith(("ok   default", "FAIL default"))]
        assert done.returncode == 1 and "was not found" in line, line
        assert line.startswith("FAIL default target: DEFAULT_TARGET"), line
        done = run_cli(dict(env, DEFAULT_TARGET=f"{alice},{bob}"), "check", cwd=tmp_path)
        [line] = [line for line in done.stdout.splitlines() if "default target" in line]
        assert done.returncode == 0 and line.startswith("ok   default target: ") and "alice, bob" in line, line
        plain = run_cli(env, "check", cwd=tmp_path)
        assert "default target" not in plain.stdout, "no line for a setting that is not set"
        # Found by a review (revAW): turned on with nothing to send to, it was said nowhere.
        alone = run_cli(dict(env, DEFAULT_TARGET_IN_CHANNELS="true"), "check", cwd=tmp_path)
        [line] = [line for line in alone.stdout.splitlines() if "default target" in line]
        assert alone.returncode == 0 and line.startswith("warn default target: DEFAULT_TARGET_IN_CHANNELS"), line


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("SLACK_BOT_TOKEN", "xapp-1-A0123-4567-abcdef", "SLACK_BOT_TOKEN is an app-level token (xapp-…)"),
        ("SLACK_BOT_TOKEN", "xoxp-1234-5678-abcdef", "SLACK_BOT_TOKEN is a user token (xoxp-…)"),
        ("SLACK_BOT_TOKEN", "0123456789abcdef0123456789abcdef", "SLACK_BOT_TOKEN is not a Slack token"),
        ("SLACK_APP_TOKEN", "xoxb-1234-5678-abcdef", "SLACK_APP_TOKEN is a bot token (xoxb-…)"),
        ("SLACK_SIGNING_SECRET", "xoxb-1234-5678-abcdef", "SLACK_SIGNING_SECRET is a bot token (xoxb-…)"),
    ],
)
def test_a_value_pasted_into_the_wrong_setting_is_named_as_such(
    variable: str, value: str, said: str, tmp_path: Path
) -> None:
    """Slack's answer to a token of the wrong kind ("invalid_auth": wrong or revoked) sends a person hunting for a
    newer token; the kind it is, and where the right one is, sends them to the right place. Exit 2: a setting."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", **{variable: value})
        done = run_cli(env, "check", cwd=tmp_path)
        served = run_cli(env, "socket" if variable == "SLACK_APP_TOKEN" else "serve", cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    line = next(line for line in done.stdout.splitlines() if line.startswith("FAIL"))
    assert "Slack refused" not in done.stdout, "a token of the wrong kind is not sent to Slack to be refused"
    assert line.startswith(f"FAIL settings: {said}, not "), line
    assert "Find it in Slack app settings" in line
    assert value not in done.stdout + done.stderr + served.stdout + served.stderr
    assert served.returncode == 2 and f"error: {said}" in served.stderr, served.stderr


def check_database(url: str, tmp_path: Path) -> tuple[int, str]:
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DATABASE_URL=url)
        done = run_cli(env, "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.split(":")[0].endswith(" database")]
    return done.returncode, line


def test_check_on_an_older_sqlite_file_says_serve_migrates_it_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """On SQLite, `check` migrated the file: a newer checkout's `check` upgraded the file a running older bridge
    was using, under it."""
    path = tmp_path / "b.db"
    asyncio.run(old_sqlite(f"sqlite:///{path}", LATEST - 1))
    code, line = check_database(f"sqlite:///{path}", tmp_path)
    assert line.startswith("warn database:") and f"schema v{LATEST - 1}: the next `serve` migrates it" in line, line
    assert code == 0
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST - 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_check_fails_on_a_database_a_newer_bridge_upgraded(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    if backend == "postgres":
        url = request.getfixturevalue("pg_server").create_database()
    asyncio.run(newer(url))
    code, line = check_database(url, tmp_path)
    newer_than = f"schema v{LATEST + 1}, newer than this bridge's v{LATEST}"
    assert line.startswith("FAIL database:") and newer_than in line, line
    assert code != 0


async def newer(url: str) -> None:
    """The latest schema, marked as a later bridge's."""
    store = open_store(url)
    await store.open()
    await store.close()
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            db.execute(f"PRAGMA user_version={LATEST + 1}")
        return
    db = await asyncpg.connect(url)
    try:
        await db.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST + 1)
    finally:
        await db.close()


def test_check_reports_a_database_readable_by_others_and_leaves_it_for_serve_to_tighten(tmp_path: Path) -> None:
    """`check` promises to change nothing, yet it tightened an older world-readable SQLite file to 600 as it
    opened it: it says so instead, and `serve` still tightens it."""
    path = tmp_path / "b.db"
    asyncio.run(newest(f"sqlite:///{path}"))
    path.chmod(0o644)
    code, line = check_database(f"sqlite:///{path}", tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o644", "check changed the file's mode"
    assert line.startswith("warn database:") and f"schema v{LATEST}" in line, line
    assert line.endswith("readable by others (mode 644): `serve` makes it 600"), line
    assert code == 0
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, path)).start(tmp_path / "bridge.log")
        bridge.stop()
    assert oct(path.stat().st_mode & 0o777) == "0o600", "serve no longer tightens it"


def test_check_names_an_events_inbox_readable_by_others(tmp_path: Path) -> None:
    """The inbox beside the database holds acknowledged events' words: `check` named only the database's files."""
    path = tmp_path / "b.db"
    asyncio.run(newest(f"sqlite:///{path}"))
    with closing(sqlite3.connect(f"{path}.inbox")) as inbox:
        inbox.execute("CREATE TABLE t (x)")
    Path(f"{path}.inbox").chmod(0o644)
    code, line = check_database(f"sqlite:///{path}", tmp_path)
    assert line.endswith("readable by others (b.db.inbox mode 644): `serve` makes it 600"), line
    assert code == 0 and oct(Path(f"{path}.inbox").stat().st_mode & 0o777) == "0o644"


async def newest(url: str) -> None:
    store = open_store(url)
    await store.open()
    await store.close()


def test_check_in_oauth_mode_leaves_an_older_database_for_serve_to_migrate(tmp_path: Path) -> None:
    """OAuth mode's workspace lines opened the store as `serve` does, so `check` migrated the file after its own
    database line had just said `serve` would."""
    from tests.e2e.oauth import oauth_env

    path = tmp_path / "b.db"
    asyncio.run(old_sqlite(f"sqlite:///{path}", LATEST - 1))
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        env = oauth_env(slack, letta, path, 3000)
        done = run_cli(env, "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.split(":")[0].endswith(" workspaces")]
    assert line.startswith("warn workspaces:") and "once `serve` has migrated the database" in line, line
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST - 1


def test_a_database_url_at_a_server_that_is_not_postgres_says_so_not_sslmode(tmp_path: Path) -> None:
    """A URL with the wrong port (an HTTP server there) was told the server does not offer TLS, "which the URL's
    sslmode insists on", though the URL named no sslmode and prefer, the default, goes on without TLS."""
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        port = urlsplit(slack.api_url).port
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DATABASE_URL=f"postgres://u:pw@127.0.0.1:{port}/db")
        done = run_cli(env, "check", cwd=tmp_path)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL database")]
    assert "is not PostgreSQL; check them in the URL" in line and "sslmode" not in line, line


@pytest.mark.parametrize(
    ("error", "status"), [("service_unavailable", 503), ("ratelimited", 429), ("internal_error", 500)]
)
def test_slacks_trouble_during_check_is_not_blamed_on_the_token(error: str, status: int, tmp_path: Path) -> None:
    """Before, Slack's outage or rate limit read 'Slack refused SLACK_BOT_TOKEN ... Copy the current token and set
    it again' (and `init` asked for a token that was fine)."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.fail_next("auth.test", error, status=status, times=5)
        done = run_cli(base_env(slack.api_url, letta.base_url, tmp_path / "b.db"), "check", cwd=tmp_path)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL slack")]
    assert done.returncode == 1 and "Copy the current token" not in line, line
    assert f"Slack could not check SLACK_BOT_TOKEN just now ({error})" in line and "Try again" in line, line


def test_check_warns_of_a_config_file_others_may_read(tmp_path: Path) -> None:
    """revR: config.toml holds the bot token and the signing secret (`init` writes it mode 600); a copy others on
    the machine may read was taken without a word, while a readable database was warned of."""
    with FakeSlack(scopes=",".join(ALL_SCOPES)) as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        config = tmp_path / "config.toml"
        config.write_text('log_level = "INFO"\n')
        config.chmod(0o644)
        done = run_cli(env, "check", cwd=tmp_path)
        [line] = [line for line in done.stdout.splitlines() if line.startswith("warn config file:")]
        assert "(mode 644)" in line and "chmod 600" in line, line
        assert done.returncode == 0, done.stdout
        config.chmod(0o600)
        assert "warn config file:" not in run_cli(env, "check", cwd=tmp_path).stdout


def test_check_fails_a_database_folder_serve_cannot_make_its_files_in(tmp_path: Path) -> None:
    """revV: `check` passed (exit 0: "does not exist yet: serve creates it") a SQLite file in a folder the bridge
    may not write, and `serve` then stopped at once with exit 1. As root a folder's mode refuses nothing, so a
    folder the kernel refuses files in stands in (/proc); as another user, one of mode 555."""
    import os

    folder = Path("/proc") if os.geteuid() == 0 else tmp_path / "read-only"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, folder / "bridge.db")
        checked = run_cli(env, "check", cwd=tmp_path)
        serve = BridgeProcess(env)
        serve.start(tmp_path / "serve.log", wait=False)
        assert serve.proc is not None and serve.proc.wait(30) == 1
    [line] = [line for line in checked.stdout.splitlines() if line.split(":")[0].endswith("database")]
    assert checked.returncode == 1 and line.startswith("FAIL database:"), checked.stdout
    assert f"cannot make its files in {folder}" in line and "DATABASE_URL" in line
    assert list(folder.glob(".bridge-check-*")) == []


def test_check_and_serve_read_a_home_relative_sqlite_path_alike(tmp_path: Path) -> None:
    """revV: `DATABASE_URL=sqlite:///~/…`: `check` looked in the home folder, and `channels connect` made the path
    relative to the current folder (`./~/…`, which does not exist): the same URL named two files."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.add_channel("C0HOME0001", "home")
        agent = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", HOME=str(home))
        env["DATABASE_URL"] = "sqlite:///~/data/bridge.db"
        connected = run_cli(env, "channels", "connect", "C0HOME0001", agent, cwd=tmp_path)
        assert connected.returncode == 0, connected.stderr
        assert (home / "data" / "bridge.db").exists()
        checked = run_cli(env, "check", cwd=tmp_path)
    assert "1 channel binding" in checked.stdout, checked.stdout


@pytest.mark.parametrize("version", ["0.16.8", "0.11.7"])
def test_check_warns_of_settings_that_cannot_do_what_they_say(tmp_path: Path, version: str) -> None:
    """revV: LETTA_GROUP_RUNNER=server was `ok` on a server whose group route fails (0.12 on) and token streaming
    with streaming off was said nothing of: both are warned of, and an older server's server runner is fine."""
    with FakeSlack() as slack, FakeLetta(version=version) as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_GROUP_RUNNER="server",
                       LETTA_STREAM_TOKENS="true", LETTA_STREAMING="false")
        done = run_cli(env, "check", cwd=tmp_path)
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines()}
    assert done.returncode == 0, done.stdout
    if version == "0.16.8":
        assert lines["warn runner"].startswith("warn runner: LETTA_GROUP_RUNNER=server on Letta 0.16.8"), lines
    else:
        assert "ok   runner" in lines, lines
    assert "LETTA_STREAMING=false" in lines["warn streaming"], lines
