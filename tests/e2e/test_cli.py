"""The command line as an operator uses it: plain lines, exit codes, nothing saved on failure."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from bridge.store.schema import SQLITE_MIGRATIONS
from tests.e2e.harness import REPO, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

LATEST = len(SQLITE_MIGRATIONS)  # the schema version a fresh database reaches


def test_serve_with_settings_missing_fails_fast_with_one_line_each(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "https://api.letta.com", tmp_path / "b.db")
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        del env[name]
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert [e.split(":")[1].strip() for e in errors] == [
        "missing SLACK_BOT_TOKEN", "missing SLACK_SIGNING_SECRET", "missing LETTA_API_KEY"
    ]
    assert all("Find it in" in e for e in errors)


def test_bad_setting_values_are_plain_errors_all_at_once(tmp_path: Path) -> None:
    """pydantic's own words ("Input should be a valid integer") and one bad setting per run: each is one sentence
    naming the setting as written, the value and what is allowed; a secret's value is never repeated."""
    env = base_env(
        "http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", PORT="not-a-port", LOG_LEVEL="LOUD",
        DATABASE_URL="b.db",
    )
    (tmp_path / "config.toml").write_text('slack_signing_secret = 12345678\nletta_read_timeout = "1s"\n')
    del env["SLACK_SIGNING_SECRET"]
    for command in ("serve", "check", "channels"):
        done = run_cli(env, command, *(["list"] if command == "channels" else []), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "12345678" not in done.stderr
        assert done.stderr.splitlines() == [
            "error: config.toml: slack_signing_secret must be text, in quotes",
            "error: config.toml: letta_read_timeout must be a number of seconds greater than 0, written without a "
            "unit; got '1s'",
            "error: PORT must be a whole number from 0 to 65535; got 'not-a-port'",
            "error: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR or CRITICAL; got 'LOUD'",
            "error: DATABASE_URL=b.db has no scheme: for a SQLite file write sqlite:///b.db (or, for PostgreSQL, "
            "postgres://user:password@host:5432/database)",
        ], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"], "nothing is created"


def test_a_database_url_without_a_scheme_is_told_how_to_write_it(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db")
    said = {
        "bridge.db": "DATABASE_URL=bridge.db has no scheme: for a SQLite file write sqlite:///bridge.db",
        "/var/lib/b.db": "DATABASE_URL=/var/lib/b.db has no scheme: for a SQLite file write sqlite:////var/lib/b.db",
        "bridge:pw@db.internal/bridge": "DATABASE_URL=***@db.internal/bridge has no scheme: for PostgreSQL write",
    }
    for url, line in said.items():
        done = run_cli(dict(env, DATABASE_URL=url), "check", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(f"error: {line}"), done.stderr
        assert "pw@" not in done.stderr
    assert not list(tmp_path.iterdir()), "nothing is created"


def test_a_misspelt_key_in_the_config_file_is_named_not_silently_ignored(tmp_path: Path) -> None:
    """A typo in config.toml must not read as a setting left out: the key is named, with the one it resembles."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db")
    del env["SLACK_BOT_TOKEN"]
    (tmp_path / "config.toml").write_text('slack_bot_tokn = "xoxb-typed-here"\n[slack]\nport = 3000\n')
    for command in ("check", "serve"):
        done = run_cli(env, command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "xoxb-typed-here" not in done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            "error: config.toml has a key the bridge does not know: slack_bot_tokn (did you mean slack_bot_token?); "
            "every key is in config.example.toml.",
            "error: config.toml has a key the bridge does not know: slack (a table; settings are top-level keys, "
            "like port = 3000); every key is in config.example.toml.",
        ], done.stderr


def test_help_lists_the_commands() -> None:
    done = run_cli({"PATH": "/usr/bin"} | {"HOME": str(REPO)}, "--help")
    for word in ("serve", "socket", "check", "channels"):
        assert word in done.stdout


def test_connect_list_disconnect(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        group = letta.add_group([alice, bob], manager_type="round_robin", description="Research crew")
        done = run_cli(env, "channels", "connect", "C0123ABC", group)
        assert done.returncode == 0, done.stderr
        assert "Research crew" in done.stdout and "round_robin" in done.stdout
        assert f"alice  {alice}" in done.stdout and f"bob  {bob}" in done.stdout
        assert "runner: auto (bridge on Letta 0.16.8)\n" in done.stdout and "workspace T0123ABCD" in done.stdout
        assert run_cli(env, "channels", "connect", "C0456DEF", group, "--runner", "server").returncode == 0
        listing = run_cli(env, "channels", "list").stdout
        assert any("C0123ABC" in row and " auto (bridge on Letta 0.16.8) " in row for row in listing.splitlines())
        assert any("C0456DEF" in row and " server " in row for row in listing.splitlines())
        assert run_cli(env, "channels", "disconnect", "C0456DEF").returncode == 0
        again = run_cli(env, "channels", "connect", "C0123ABC", bob, alice, "--runner", "bridge")
        assert again.returncode == 0 and f"replaced: {group}" in again.stdout and "runner: bridge\n" in again.stdout
        listing = run_cli(env, "channels", "list")
        assert "C0123ABC" in listing.stdout and f"{bob} {alice}" in listing.stdout and "bob, alice" in listing.stdout
        gone = run_cli(env, "channels", "disconnect", "C0123ABC")
        assert gone.returncode == 0 and "disconnected C0123ABC" in gone.stdout
        assert "no channels are connected" in run_cli(env, "channels", "list").stdout
        assert run_cli(env, "channels", "disconnect", "C0123ABC").returncode == 1


def _refused(env: dict[str, str], *target: str) -> str:
    done = run_cli(env, "channels", "connect", "C0123ABC", *target)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "no channels are connected" in run_cli(env, "channels", "list").stdout, "something was saved"
    return lines[0]


def test_connect_refuses_bad_ids_unknown_targets_and_saves_nothing(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice = letta.add_agent("alice")
        empty = letta.add_group([])
        assert "not a group id" in _refused(env, "group-nope")
        assert "not an agent id" in _refused(env, "alice")
        assert "not an agent id" in _refused(env, alice, "group-00000000-0000-4000-8000-000000000000")
        assert "was not found" in _refused(env, "group-00000000-0000-4000-8000-000000000000")
        assert "was not found" in _refused(env, "agent-00000000-0000-4000-8000-000000000000")
        assert "has no agents" in _refused(env, empty)
        assert "listed twice" in _refused(env, alice, alice)
        assert "not a Slack channel id" in run_cli(env, "channels", "connect", "#general", alice).stderr


def test_an_id_letta_refuses_as_malformed_is_said_in_words_not_as_its_validation_dump(tmp_path: Path) -> None:
    """0.16 answers 422 with pydantic's error list for an id that is a UUID but not a version 4 one (as a hand-made
    or mistyped id is): the person reads what Letta's ids look like, not a Python repr."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        for target in ("agent-00000000-0000-0000-0000-000000000000", "group-00000000-0000-0000-0000-000000000000"):
            line = _refused(env, target)
            kind = target.split("-")[0]
            assert line == (
                f"error: the Letta server refused {kind} {target}: its {kind} ids are {kind}-<uuid4> (the third part "
                f"starts with 4), so no {kind} has this one. Copy the id from the Letta server's {kind} list."
            ), line  # at the terminal, no slash command: the workspace's may be renamed (SLACK_COMMAND)


def test_connect_refuses_when_letta_is_down_or_the_key_is_wrong(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key="right-key") as letta:
        alice = letta.add_agent("alice")
        wrong = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_API_KEY="wrong-key")
        refusal = _refused(wrong, alice)
        assert "rejected the API key (HTTP 401): LETTA_API_KEY is missing, wrong or revoked" in refusal
        assert "operator" not in refusal
        refused = _refused(dict(wrong, SLACK_BOT_TOKEN="xoxb-revoked"), alice)
        assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in refused and "OAuth & Permissions" in refused
        right = dict(wrong, LETTA_API_KEY="right-key")
        assert run_cli(right, "channels", "connect", "C0123ABC", alice).returncode == 0
        [send] = [r for r in letta.requests if r.path == f"/v1/agents/{alice}"][-1:]
        assert send.headers["authorization"] == "Bearer right-key"
    down = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "c.db")
    unreachable = _refused(down, alice, "--team", "T0123ABCD")
    assert "cannot reach the Letta server at http://127.0.0.1:9" in unreachable and "ask again" not in unreachable
    assert "cannot reach Slack" in _refused(down, alice)


def test_check_passes_against_healthy_fakes_and_fails_plainly_otherwise(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_PROJECT="proj-1")
        done = run_cli(env, "check")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert any(line.startswith("ok   slack: auth.test") and "T0123ABCD" in line for line in lines)
        assert any(line.startswith("ok   letta:") and "0.11.7" in line for line in lines)
        assert "ok   runner: LETTA_GROUP_RUNNER=auto (server on Letta 0.11.7)" in lines
        assert any(line.startswith("warn database:") and "does not exist yet" in line for line in lines)
        assert not (tmp_path / "b.db").exists(), "check created the database"
        assert letta.requests[-1].headers.get("x-project") == "proj-1"
        assert any(line.startswith("ok   conversations: this server has none: the bridge keeps one context per agent")
                   for line in lines)
        letta.set_version("0.16.8")
        assert run_cli(env, "channels", "connect", "C0123ABC", letta.add_agent("alice")).returncode == 0
        lines = run_cli({**env, "LETTA_CONVERSATIONS": "true"}, "check").stdout.splitlines()
        assert "ok   runner: LETTA_GROUP_RUNNER=auto (bridge on Letta 0.16.8)" in lines
        db_line = f"ok   database: SQLite file {tmp_path / 'b.db'} (schema v{LATEST}, 1 channel binding:"
        assert any(line.startswith(db_line)
                   and "C0123ABC in order, runner auto (bridge for a list of agents)" in line for line in lines), lines
        assert any(line.startswith("ok   conversations: each Slack thread is a Letta conversation") for line in lines)
    slack2 = FakeSlack(scopes="chat:write")
    with slack2:
        env = base_env(slack2.api_url, "http://127.0.0.1:9", tmp_path / "b.db")
        done = run_cli(env, "check")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert any(line.startswith("FAIL slack scopes: missing") for line in done.stdout.splitlines())
        assert any(line.startswith("FAIL letta:") for line in done.stdout.splitlines())


def test_check_warns_about_sqlite_on_an_ephemeral_disk_and_masks_a_postgres_password(
    tmp_path: Path, pg_server: PgServer
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DYNO="web.1")
        done = run_cli(env, "check")
        assert done.returncode == 0, "a warning is not a failure: " + done.stdout
        [warning] = [line for line in done.stdout.splitlines() if line.startswith("warn database storage")]
        assert warning.startswith("warn database storage: SQLite on Heroku (DYNO is set)")
        assert "heroku addons:create heroku-postgresql" in warning and "DATABASE_URL" in warning
        parts = urlsplit(pg_server.create_database())
        url = parts._replace(netloc=f"bridge:pw-never-shown@{parts.hostname}:{parts.port}").geturl()
        assert run_cli(dict(env, DATABASE_URL=url), "channels", "list").returncode == 0  # its tables made
        done = run_cli(dict(env, DATABASE_URL=url), "check")
        assert done.returncode == 0, done.stdout + done.stderr
        # Only the optional session scope may warn (the reference app predates agent sessions).
        warnings = [line for line in done.stdout.splitlines() if line.startswith("warn")]
        assert all("assistant:write" in line for line in warnings), warnings
        assert any(line.startswith("ok   database: postgresql://bridge:***@") and f"schema v{LATEST}" in line
                   for line in done.stdout.splitlines()), done.stdout
        assert "pw-never-shown" not in done.stdout + done.stderr
        refused = run_cli(dict(env, DATABASE_URL="postgres://bridge:pw-never-shown@127.0.0.1:9/x"), "check")
        assert refused.returncode == 1 and "FAIL database: cannot open the database" in refused.stdout
        assert "pw-never-shown" not in refused.stdout + refused.stderr and "Traceback" not in refused.stderr


def test_connect_refuses_a_malformed_id_as_usage_and_any_refusal_creates_nothing(tmp_path: Path) -> None:
    """A bad channel id exited 2 but a bad group or agent id 1 (docs/operations.md: 2 is a command used wrongly, 1
    a lookup that failed); and every refusal left an empty bridge.db behind, opened before the ids were looked at."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice = letta.add_agent("alice")
        malformed = {
            ("general", alice): "general is not a Slack channel id",
            ("C0123ABC", "group-xyz"): "group-xyz is not a group id",
            ("C0123ABC", "agentx"): "agentx is not an agent id",
            ("C0123ABC", alice, "bob"): "bob is not an agent id",
        }
        for args, said in malformed.items():
            done = run_cli(env, "channels", "connect", *args, cwd=tmp_path)
            assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
            assert done.stderr.startswith(f"error: {said}"), done.stderr
        absent = "group-" + "0" * 8 + "-0000-4000-8000-" + "0" * 12
        done = run_cli(env, "channels", "connect", "C0123ABC", absent, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert list(tmp_path.iterdir()) == [], "a refused connect creates nothing"
        assert run_cli(env, "channels", "connect", "C0123ABC", alice, cwd=tmp_path).returncode == 0
        assert (tmp_path / "b.db").exists()


def test_connect_refuses_a_dm_that_would_never_be_answered(tmp_path: Path) -> None:
    """Without DEFAULT_TARGET the bridge ignores direct messages: a DM's binding was saved all the same."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        alice = letta.add_agent("alice")
        done = run_cli(env, "channels", "connect", "D0123ABCD", alice)
        assert done.returncode == 1 and "D0123ABCD is a direct message" in done.stderr, done.stderr
        assert "DEFAULT_TARGET" in done.stderr and "Traceback" not in done.stderr
        assert "no channels are connected" in run_cli(env, "channels", "list").stdout
        with_default = dict(env, DEFAULT_TARGET=alice)  # there a DM's own binding is used before the default
        assert run_cli(with_default, "channels", "connect", "D0123ABCD", alice).returncode == 0


def test_the_command_line_does_not_wait_minutes_on_a_letta_that_never_answers(tmp_path: Path) -> None:
    """A Letta that takes the connection and never answers kept `check` waiting LETTA_READ_TIMEOUT (5 minutes by
    default) on its health check, and `channels connect` and `list` as long on their lookups. One-shot lookups
    wait LETTA_LOOKUP_TIMEOUT (30 s by default) instead; sends keep LETTA_READ_TIMEOUT."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", LETTA_LOOKUP_TIMEOUT="1")
        assert run_cli(env, "channels", "connect", "C0123ABC", alice).returncode == 0
        letta.hang_next("GET", r"/v1/health/?", times=2)
        started = time.monotonic()
        done = run_cli(env, "check")
        assert done.returncode == 1 and "did not answer the health check in time" in done.stdout, done.stdout
        listing = run_cli(env, "channels", "list")
        assert listing.returncode == 0 and "C0123ABC" in listing.stdout, listing.stderr
        letta.hang_next("GET", rf"/v1/agents/{alice}/?")
        refused = run_cli(env, "channels", "connect", "C0456DEF", alice)
        assert refused.returncode == 1 and "did not answer" in refused.stderr, refused.stderr
        assert time.monotonic() - started < 20


def test_broadcast_with_another_patterns_options_is_refused_not_dropped(tmp_path: Path) -> None:
    """`--broadcast --pattern supervisor --manager M` bound a broadcast and dropped the supervisor and its manager
    without a word; `--broadcast --max-turns 3` dropped the max turns."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        a, b, boss = letta.add_agent("a"), letta.add_agent("b"), letta.add_agent("boss")
        said = _refused(env, a, b, "--broadcast", "--pattern", "supervisor", "--manager", boss)
        assert "--broadcast" in said and "--pattern supervisor" in said, said
        said = _refused(env, a, b, "--broadcast", "--max-turns", "3")
        assert "--max-turns goes with round_robin and dynamic, not broadcast" in said, said
        done = run_cli(env, "channels", "connect", "C0123ABC", a, b, "--broadcast", "--pattern", "broadcast")
        assert done.returncode == 0 and "pattern: broadcast" in done.stdout, done.stderr


def test_pattern_options_used_wrongly_exit_2_as_a_command_used_wrongly(tmp_path: Path) -> None:
    """docs/operations.md: 2 is a command used wrongly, 1 a lookup that failed. `--pattern supervisor` without
    `--manager`, or `--manager` without `--pattern`, exited 1, as if Letta had refused something."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        a, b, boss = letta.add_agent("a"), letta.add_agent("b"), letta.add_agent("boss")
        wrongly = [
            ("--pattern", "supervisor"),
            ("--manager", boss),
            ("--pattern", "dynamic", "--manager", a),
            ("--pattern", "round_robin", "--max-turns", "0"),
            ("--broadcast", "--pattern", "supervisor", "--manager", boss),
        ]
        for options in wrongly:
            done = run_cli(env, "channels", "connect", "C0123ABC", a, b, *options, cwd=tmp_path)
            assert done.returncode == 2 and "Traceback" not in done.stderr, (options, done.returncode, done.stderr)
        absent = "agent-" + "0" * 8 + "-0000-4000-8000-" + "0" * 12
        done = run_cli(env, "channels", "connect", "C0123ABC", a, b, "--pattern", "supervisor", "--manager", absent)
        assert done.returncode == 1 and "was not found" in done.stderr, done.stderr


def test_a_command_used_wrongly_is_said_before_slack_or_letta_is_asked(tmp_path: Path) -> None:
    """`channels disconnect general` asked Slack for the workspace first, and `--pattern supervisor` without a
    manager looked every agent up first: with Slack or Letta unreachable the operator was told about them (exit 1)
    and fixed the wrong thing. docs/operations.md: a command used wrongly is exit 2, said before any lookup."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        a = letta.add_agent("a")
        assert run_cli(env, "channels", "connect", "C0123ABC", a).returncode == 0  # the database exists
    nobody = "http://127.0.0.1:9"  # nothing listens there
    offline = dict(env, SLACK_API_URL=f"{nobody}/api/", LETTA_BASE_URL=nobody)
    done = run_cli(offline, "channels", "disconnect", "general")
    assert (done.returncode, done.stderr.startswith("error: general is not a Slack channel id")) == (2, True), (
        done.stderr
    )
    for options, said in [
        (("--pattern", "supervisor"), "a supervisor group needs a manager"),
        (("--pattern", "round_robin", "--max-turns", "0"), "--max-turns is a number from 1 to"),
        (("--pattern", "supervisor", "--manager", a), "the manager is listed among the agents too"),
    ]:
        done = run_cli(offline, "channels", "connect", "C0456DEF", a, *options)
        assert done.returncode == 2 and said in done.stderr, (options, done.returncode, done.stderr)


def test_connecting_a_channel_again_to_what_it_has_changes_nothing(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        a = letta.add_agent("a")
        assert run_cli(env, "channels", "connect", "C0123ABC", a).returncode == 0
        again = run_cli(env, "channels", "connect", "C0123ABC", a)
        assert again.returncode == 0 and "C0123ABC in workspace" in again.stdout, again.stdout
        assert again.stdout.rstrip().endswith("was connected to this already: nothing changed"), again.stdout
        assert "replaced:" not in again.stdout and "connected C0123ABC" not in again.stdout


def test_https_to_a_server_that_speaks_plain_http_is_said_as_tls_not_as_nothing_answering(tmp_path: Path) -> None:
    """It said "nothing answers there. Start the server", though the server was up and answered in plain HTTP."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url.replace("http://", "https://"), tmp_path / "b.db")
        done = run_cli(env, "channels", "connect", "C0123ABC", letta.add_agent("a"))
        assert done.returncode == 1 and "TLS with the Letta server at https://" in done.stderr, done.stderr
        assert "write LETTA_BASE_URL with http://" in done.stderr and "nothing answers there" not in done.stderr


def test_a_bad_value_does_not_hide_what_else_serve_lacks(tmp_path: Path) -> None:
    """`PORT=abc` and nothing else set: only PORT was said; once it was put right, three more lines came. A
    setting refused is not said missing too."""
    env = base_env("http://127.0.0.1:9/api/", "https://api.letta.com", tmp_path / "b.db", PORT="abc")
    for name in ("SLACK_BOT_TOKEN", "LETTA_API_KEY", "SLACK_SIGNING_SECRET"):
        env.pop(name, None)
    (tmp_path / "config.toml").write_text("slack_signing_secret = 12345678\n")
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    said = [line.split(":")[1].strip() for line in done.stderr.splitlines()]
    assert said == [
        "config.toml", "PORT must be a whole number from 0 to 65535; got 'abc'", "missing SLACK_BOT_TOKEN",
        "missing LETTA_API_KEY",
    ], done.stderr
