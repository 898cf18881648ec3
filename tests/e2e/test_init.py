"""`python -m bridge init` as a new operator runs it: through a pseudo-terminal (hidden secrets, answers checked
at once, asked again when wrong) and from flags and environment variables, against the fake Slack and Letta."""

from __future__ import annotations

import os
import pty
import select
import stat
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

LETTA_KEY = "letta-key-for-init-42"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeLetta]]:
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key=LETTA_KEY) as letta:
        yield slack, letta


def bare_env(slack: FakeSlack, tmp: Path) -> dict[str, str]:
    """The environment of someone who has set nothing yet (the Slack API URL points at the fake)."""
    env = base_env(slack.api_url, "http://unused", tmp / "unused.db")
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL", "DATABASE_URL"):
        env.pop(name)
    return env


class Terminal:
    """`python -m bridge init` on a pseudo-terminal, so getpass really hides what is typed."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.seen = ""
        self.read_upto = 0  # what expect() has matched so far; later expectations look past it
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the bridge
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "bridge", "init", *args], env)

    def expect(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.read_upto :]:
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"never saw {text!r}; the terminal shows:\n{self.seen}")
        self.read_upto = self.seen.index(text, self.read_upto) + len(text)

    def answer(self, prompt: str, text: str) -> None:
        """Type `text` once `prompt` is on screen (typing earlier would beat getpass turning echo off)."""
        self.expect(prompt)
        os.write(self.fd, text.encode() + b"\r")

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), self.seen

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return bool(chunk)


def test_init_in_a_terminal_checks_each_answer_hides_secrets_and_writes_a_private_config(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    slack, letta = fakes
    env = bare_env(slack, tmp_path)
    term = Terminal(env, tmp_path)
    term.answer("Public https URL", "https://bridge.acme.test/")
    # The app is created from the manifest first; only then has it a token to give.
    term.expect("request_url: https://bridge.acme.test/slack/events")
    term.expect("copy its two secrets")
    term.answer("Slack bot token (xoxb-…): ", "")
    term.expect("Nothing typed: the bridge needs its Slack bot token (xoxb-…); find it in Slack app settings > OAuth")
    term.answer("Slack bot token (xoxb-…): ", "not-a-token")
    term.expect("a bot token starts with xoxb-")
    term.answer("Slack bot token (xoxb-…): ", "xoxb-wrong-token")
    term.expect("FAIL slack: Slack refused SLACK_BOT_TOKEN (invalid_auth): the token is wrong")
    term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
    term.expect("ok   slack: auth.test")
    term.answer("Slack signing secret: ", SIGNING_SECRET)
    term.answer("Letta server URL", "http://127.0.0.1:9")
    term.expect("FAIL letta: cannot reach the Letta server at http://127.0.0.1:9")
    term.answer("Letta server URL", letta.base_url)
    term.expect("ok   letta: reachable")
    term.answer("Letta API key (Enter for none): ", "")
    term.expect("FAIL letta key: the Letta server at")
    term.expect("rejected the API key (HTTP 401)")
    assert term.seen.count("rejected the API key") == 1, "said twice"
    term.answer("Letta API key (Enter for none): ", LETTA_KEY)
    code, screen = term.finish()
    assert code == 0, screen
    for secret in (BOT_TOKEN, SIGNING_SECRET, LETTA_KEY):
        assert secret not in screen, "a secret was echoed"
    for slack_words in ("ask again", "An operator", "I couldn't"):
        assert slack_words not in screen, "a sentence written for Slack reached the terminal"
    assert "request_url: https://bridge.acme.test/slack/events" in screen
    assert "url: https://bridge.acme.test/slack/events" in screen and "command: /letta" in screen
    assert "bridge.example.com" not in screen, "the filled-in manifest still says to replace the example URL"
    assert screen.index("request_url:") < screen.index("Slack bot token"), "the manifest comes before the token"
    assert "-m bridge serve" in screen.splitlines()[-2] and "BRIDGE_CONFIG" not in screen
    config = tmp_path / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    values = tomllib.loads(config.read_text())
    assert values == {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "letta_base_url": letta.base_url,
        "letta_api_key": LETTA_KEY,
        "slack_api_url": slack.api_url,
    }
    # What init wrote is enough: `check` passes with nothing else set.
    checked = run_cli(env, "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_declining_to_overwrite_the_config_is_calm_and_keeps_it(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('slack_bot_token = "xoxb-kept"\n')
    again = Terminal(bare_env(fakes[0], tmp_path), tmp_path)
    again.answer("config.toml already exists. Overwrite it? [y/N] ", "n")
    code, screen = again.finish()
    assert code == 0 and "Kept config.toml as it was" in screen and "error" not in screen
    assert config.read_text() == 'slack_bot_token = "xoxb-kept"\n'


def test_init_from_flags_and_variables_for_scripts(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path) -> None:
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, LETTA_API_KEY=LETTA_KEY)
    target = tmp_path / "conf" / "bridge.toml"
    target.parent.mkdir()
    args = ["init", "--non-interactive", "--slack-signing-secret", SIGNING_SECRET, "--letta-base-url",
            letta.base_url, "--config", str(target)]
    done = run_cli(env, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert tomllib.loads(target.read_text())["letta_api_key"] == LETTA_KEY
    assert "url: https://bridge.example.com/slack/events" in done.stdout
    assert "Replace https://bridge.example.com" in done.stdout
    assert f"BRIDGE_CONFIG={target}" in done.stdout.splitlines()[-2]

    refused = run_cli(env, *args, cwd=tmp_path)
    assert refused.returncode == 2 and "already exists; pass --force" in refused.stderr
    forced = run_cli(env, *args, "--force", "--public-url", "https://b.acme.test", cwd=tmp_path)
    assert forced.returncode == 0 and "https://b.acme.test/slack/events" in forced.stdout

    wrong_key = run_cli(dict(env, LETTA_API_KEY="nope"), *args, "--config", str(tmp_path / "other.toml"), cwd=tmp_path)
    assert wrong_key.returncode == 1 and "LETTA_API_KEY did not pass its check" in wrong_key.stderr
    assert "rejected the API key" in wrong_key.stdout and "operator" not in wrong_key.stdout
    assert not (tmp_path / "other.toml").exists()

    missing = run_cli(bare_env(slack, tmp_path), "init", "--non-interactive", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "missing --slack-bot-token (or SLACK_BOT_TOKEN)" in missing.stderr
    assert "--letta-base-url (or LETTA_BASE_URL)" in missing.stderr


def test_init_names_a_server_url_it_cannot_use(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path) -> None:
    slack, _ = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    refused = {"localhost:8283": "has no scheme: write it as http://localhost:8283", "http://": "has no host"}
    for url, said in refused.items():
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", url, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"FAIL letta: LETTA_BASE_URL={url} {said}" in done.stdout
    done = run_cli(dict(env, SLACK_API_URL="slack.com/api"), "init", "--non-interactive", "--letta-base-url",
                   "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error: SLACK_API_URL=slack.com/api has no scheme" in done.stderr
    assert not (tmp_path / "config.toml").exists()


def test_init_refuses_a_public_url_slack_would_not_call(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path) -> None:
    """Slack calls only https request URLs: an http:// one passed ("Slack will call http://…") and went into the
    manifest, which Slack then refused, while a URL without a scheme was told "it starts with https://"."""
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=LETTA_KEY)
    for url in ("http://bridge.acme.test", "bridge.acme.test"):
        done = run_cli(env, "init", "--non-interactive", "--public-url", url, "--letta-base-url", letta.base_url,
                       cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout
        [line] = [line for line in done.stdout.splitlines() if "public URL" in line]
        assert line.startswith("FAIL public URL: Slack calls only https:// URLs") and "Socket Mode" in line, line
        assert not (tmp_path / "config.toml").exists()


def test_init_says_at_once_when_it_could_not_write_the_file(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    """The file's folder is judged before a single question: answers typed for a file that cannot be written
    would be lost, and the write's failure was a traceback."""
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=LETTA_KEY, LETTA_BASE_URL=letta.base_url)
    nowhere = tmp_path / "no-such-folder" / "config.toml"
    done = run_cli(env, "init", "--non-interactive", "--config", str(nowhere), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == [
        f"error: cannot write {nowhere}: the folder {nowhere.parent} does not exist. Create it, or pass --config "
        "with a file in a folder that exists. Nothing was written."
    ]
    assert "auth.test" not in done.stdout, "no answer is checked for a file that cannot be written"
    assert not slack.calls_to("auth.test")
    # A folder given for the file was told to pass --force, which then failed with "Is a directory".
    for force in ((), ("--force",)):
        done = run_cli(env, "init", "--non-interactive", "--config", str(tmp_path), *force, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(f"error: {tmp_path} is a folder: pass --config with a "
                                                               "file's path"), done.stderr
    done = run_cli(dict(env, BRIDGE_CONFIG=str(tmp_path)), "check", cwd=tmp_path)
    assert done.returncode == 2 and "points to" in done.stderr and "a folder, not a file" in done.stderr, done.stderr


def test_init_refuses_a_token_as_the_signing_secret(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path) -> None:
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=BOT_TOKEN,
               LETTA_API_KEY=LETTA_KEY, LETTA_BASE_URL=letta.base_url)
    done = run_cli(env, "init", "--non-interactive", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "FAIL signing secret: SLACK_SIGNING_SECRET is a bot token (xoxb-…), not the one it needs" in done.stdout
    assert "SLACK_SIGNING_SECRET did not pass its check" in done.stderr
    assert not (tmp_path / "config.toml").exists()


def test_init_names_an_app_level_token_given_as_the_bot_token(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    """The app-level token (xapp-, Socket Mode's) is the other token a newcomer finds in the app settings: init said
    only "a bot token starts with xoxb-", where `check` names what was pasted."""
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN="xapp-1-A0123-4567-abcdef",
               SLACK_SIGNING_SECRET=SIGNING_SECRET, LETTA_API_KEY=LETTA_KEY, LETTA_BASE_URL=letta.base_url)
    done = run_cli(env, "init", "--non-interactive", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "FAIL slack: SLACK_BOT_TOKEN is an app-level token (xapp-…), not the one it needs" in done.stdout
    assert "xapp-1-A0123" not in done.stdout and not slack.calls_to("auth.test")


def test_init_takes_a_rotating_bot_token(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path) -> None:
    """With token rotation on, Slack's bot token starts with xoxe.xoxb-: `check` and `serve` take it, and init
    refused it as "not a bot token" before asking Slack."""
    slack, letta = fakes
    slack.bot_token = "xoxe.xoxb-1-rotating-test-token"
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=LETTA_KEY, LETTA_BASE_URL=letta.base_url)
    done = run_cli(env, "init", "--non-interactive", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   slack: auth.test" in done.stdout and "starts with xoxb-" not in done.stdout
    assert slack.bot_token not in done.stdout + done.stderr


def test_missing_settings_lead_a_newcomer_to_init(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "https://api.letta.com", tmp_path / "b.db")
    del env["SLACK_BOT_TOKEN"]
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2 and "python -m bridge init" in done.stderr
    # ...and which file was read: a newcomer who ran init in another folder learns why it was not.
    assert f"No config file was read: there is no config.toml in {tmp_path}" in done.stderr, done.stderr
    (tmp_path / "config.toml").write_text('slack_api_url = "http://127.0.0.1:9/api/"\n')
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2 and f"read from the environment and {tmp_path / 'config.toml'}" in done.stderr


def test_socket_without_its_app_token_says_how_to_set_it_not_init_alone(tmp_path: Path) -> None:
    """init asks for no SLACK_APP_TOKEN: `socket` missing it (or given a bot token there) sent a newcomer to init
    for it, which would never ask."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db")
    for token in (None, BOT_TOKEN):
        done = run_cli(env if token is None else dict(env, SLACK_APP_TOKEN=token), "socket", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        advice = done.stderr.splitlines()[-1]
        assert "init` does not ask for SLACK_APP_TOKEN" in advice and "export SLACK_APP_TOKEN=xapp-" in advice, advice
        assert "Run `python -m bridge init`" not in advice, advice
    both = run_cli({k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}, "socket", cwd=tmp_path)
    assert both.returncode == 2
    assert "Run `python -m bridge init`" in both.stderr and "does not ask for SLACK_APP_TOKEN" in both.stderr


def test_serve_without_a_signing_secret_but_with_an_app_token_points_to_socket(tmp_path: Path) -> None:
    """Set up for Socket Mode (SLACK_APP_TOKEN, no signing secret), `serve` (README's step 4) asked for a signing
    secret only, though `socket` needs none."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-1-A-b")
    del env["SLACK_SIGNING_SECRET"]
    done = run_cli(env, "serve", cwd=tmp_path)
    assert done.returncode == 2 and "missing SLACK_SIGNING_SECRET" in done.stderr, done.stderr
    assert "SLACK_APP_TOKEN is set: for Socket Mode run `python -m bridge socket`" in done.stderr, done.stderr


def test_init_flags_help_speaks_of_secrets_only_for_secrets() -> None:
    done = run_cli({"PATH": "/usr/bin"}, "init", "--help")
    flags = " ".join(done.stdout.split())  # argparse wraps the help text
    # The default is only the prompt's: --non-interactive asks for it (the settings' own default is Letta Cloud).
    assert ("--letta-base-url LETTA_BASE_URL or $LETTA_BASE_URL; needed with --non-interactive (the prompt suggests "
            "http://localhost:8283)") in flags
    assert "--slack-bot-token SLACK_BOT_TOKEN or $SLACK_BOT_TOKEN (better for a secret" in flags
    assert flags.count("secret:") == 3, "the bot token, the signing secret and the Letta key"


def test_a_letta_url_with_a_path_on_a_keyed_server_is_named_as_the_url_not_the_key(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    """Letta answers its health check without a key, but a route it lacks only with 401 when it runs with a password
    (0.16.8's auth-health-unauthenticated and auth-wrong-unknown-route captures): so a 401 on the health check of a
    URL with a path is the URL's fault. It was blamed on LETTA_API_KEY, which init had not even asked for yet."""
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", f"{letta.base_url}/api", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("FAIL letta")]
    assert "LETTA_API_KEY" not in line and "rejected the API key" not in line, line
    assert "without /v1 or another path" in line, line


def test_a_letta_url_ending_in_v1_is_refused_before_it_misleads(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    """The bridge adds /v1 to every call: with LETTA_BASE_URL=http://host:8283/v1 `serve` started as if all were
    well and `channels connect C… group-…` said "this Letta server has no groups" (its 404 for /v1/v1/groups/…).
    The setting is now refused, in one line, by every command."""
    slack, letta = fakes
    group = letta.add_group([letta.add_agent("alice")])
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=LETTA_KEY, DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    for url in (f"{letta.base_url}/v1", f"{letta.base_url}/v1/"):
        done = run_cli(dict(env, LETTA_BASE_URL=url), "channels", "connect", "C0123ABC", group, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "no groups" not in done.stderr, done.stderr
        assert f"LETTA_BASE_URL={url} ends in /v1" in done.stderr and f"write {letta.base_url}" in done.stderr
    asked = run_cli(env, "init", "--non-interactive", "--letta-base-url", f"{letta.base_url}/v1", cwd=tmp_path)
    assert asked.returncode == 1 and "ends in /v1, which the bridge adds" in asked.stdout, asked.stdout


def test_init_keeps_the_slash_command_it_printed_the_manifest_for(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    """`SLACK_COMMAND=agents python -m bridge init`: the manifest names /agents, and before, config.toml did not,
    so a `serve` from the file alone answered every /agents with 404 (Slack showed the person an error)."""
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, LETTA_API_KEY=LETTA_KEY, SLACK_COMMAND="agents")
    done = run_cli(env, "init", "--non-interactive", "--slack-signing-secret", SIGNING_SECRET, "--letta-base-url",
                   letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "command: /agents" in done.stdout
    assert tomllib.loads((tmp_path / "config.toml").read_text())["slack_command"] == "/agents"


def test_init_with_a_letta_url_holding_a_query_says_so_without_a_traceback(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    slack, letta = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", f"{letta.base_url}?project=x", cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (1, 2)
    assert "cannot have a query" in done.stdout + done.stderr


def test_init_with_credentials_in_the_letta_url_and_a_key_never_prints_the_key(
    fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path
) -> None:
    slack, letta = fakes
    key = "sk-let-VERY-SECRET-KEY-0123456789"
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               LETTA_API_KEY=key)
    url = letta.base_url.replace("http://", "http://user:pw@")
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", url, cwd=tmp_path)
    assert "SECRET-KEY-0123456789" not in done.stdout + done.stderr, done.stderr  # the key, in a pydantic traceback
    assert "Traceback" not in done.stderr, done.stderr
    assert "carries a user and password" in done.stdout + done.stderr
