"""`python -m bridge init`: the first run, in the terminal.

Asks for the bridge's public URL and prints the Slack app manifest with it filled in (the app is created from it,
and only then has secrets to give), then for the Slack bot token and signing secret and the Letta URL and key
(secrets with hidden input); checks each as soon as it is given (auth.test, GET /v1/health/, a list call with the
key), writes config.toml with mode 600 (an existing file only after a yes, or --force; of its settings, those
init does not ask about are kept unless a load would refuse them), and ends with the command that starts the
bridge, naming each exported variable that would override an answer written. With --non-interactive (or no
terminal) it takes flags and environment variables instead and fails, plainly, on anything missing or wrong
(saying, without a terminal, why nothing was asked).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shlex
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError as SourceError

from bridge.config import LETTA_SCHEMES, Settings, environment_gives_way
from bridge.config_errors import letta_path_problem, letta_query_problem, plain_errors, unparsed, url_problem
from bridge.config_file import DEFAULT_CONFIG_FILE, read_keys, write_private
from bridge.config_load import ValuesOnly
from bridge.init_file import config_text, kept_values, overridden, planned_settings, replaced, starts_here
from bridge.init_questions import (
    BOT_TOKEN,
    LETTA_KEY,
    LETTA_URL,
    PUBLIC_URL,
    SIGNING_SECRET,
    SOCKET_SIGNING_SECRET,
    Question,
    Verdict,
    add_arguments,
    check_public_url,
    check_signing_secret,
)
from bridge.logs import shown_url
from bridge.manifest import EXAMPLE_URL, manifest, request_url
from bridge.requirements import SLACK_BOT_TOKEN, TOKEN_KINDS, gap, wrong_kind
from bridge.settings_words import Origin

__all__ = ["InitStopped", "add_arguments", "run_init"]


class InitStopped(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# The settings init asks about: the environment's values of these give way to its answers and flags in its checks.
ASKED = frozenset(q.key for q in (BOT_TOKEN, SIGNING_SECRET, LETTA_URL, LETTA_KEY))


class _Invalid(Exception):
    """The answers so far make no settings: `lines` say why, one plain sentence each; `exported`, the variables
    among the refused that come from the environment, which init cannot correct by asking."""

    def __init__(self, lines: list[str], exported: list[str] | None = None) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
        self.exported = exported or []


def run_init(args: argparse.Namespace) -> int:
    interactive = not args.non_interactive and sys.stdin.isatty()
    try:
        return Wizard(args, interactive).run()
    except InitStopped as exc:
        if exc.code == 0:  # the operator chose to stop: no error
            print(exc)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (KeyboardInterrupt, EOFError):
        print("\ninit stopped; nothing was written.", file=sys.stderr)
        return 130


class Wizard:
    def __init__(self, args: argparse.Namespace, interactive: bool) -> None:
        self.args = args
        self.interactive = interactive
        self.path = Path(args.config or os.environ.get("BRIDGE_CONFIG") or DEFAULT_CONFIG_FILE)
        self.answers: dict[str, str] = {}
        # Kept in the file as well: the manifest printed names SLACK_COMMAND's command, which a `serve` started
        # from the file alone must answer.
        command = os.environ.get("SLACK_COMMAND", "").strip()
        extra = {
            "slack_api_url": os.environ.get("SLACK_API_URL"),
            "letta_project": os.environ.get("LETTA_PROJECT"),
            "slack_command": command if not command or command.startswith("/") else "/" + command,
        }
        self.extra = {k: v for k, v in extra.items() if v}

    def run(self) -> int:
        try:  # the checks run with the environment's settings init does not ask about (and the file's kept keys):
            # an exported one the bridge would refuse stops init at once, as `check` and `serve` would stop
            self._settings()
        except _Invalid as invalid:
            words = "; ".join(invalid.lines) + ". " + _unset(invalid.exported)
            raise InitStopped(words + "Nothing was written.", 2) from None
        self._may_write()
        if self.interactive:
            print(
                "Setting up letta-slack-bridge: first the Slack app (it needs the bridge's public URL and gives you "
                "its two secrets), then Letta.\nSecrets are typed without being shown; each answer is checked.\n"
            )
        elif missing := [
            q for q in (BOT_TOKEN, self._signing_secret(), LETTA_URL) if not (q.optional or self._given(q))
        ]:
            lines = [f"missing {q.flag} (or {q.variable})" for q in missing]
            raise InitStopped("; ".join(lines) + ". Nothing was written." + self._no_terminal(), 2)
        self._manifest(self._ask(PUBLIC_URL, check_public_url))
        self._ask(BOT_TOKEN, self._check_slack)
        self._ask(self._signing_secret(), check_signing_secret)
        self._ask(LETTA_URL, self._check_letta_url)
        self._ask(LETTA_KEY, self._check_letta_key)
        self._write()
        self._finish()
        return 0

    def _signing_secret(self) -> Question:
        """Skippable only where the bridge will run over Socket Mode, which does not use it."""
        return SOCKET_SIGNING_SECRET if self._socket_token() else SIGNING_SECRET

    def _socket_token(self) -> str | None:
        """Where Socket Mode's app-level token comes from ("environment" or "file"), or None when the bridge will
        run over HTTP: with a public URL given, or as checks.py and cli.py decide (no token with text in it, or
        OAuth), from the environment and the config file (before `_write`, the one replaced) as settings read them."""
        if self._given(PUBLIC_URL) or self.answers.get(PUBLIC_URL.key):
            return None
        try:
            keys = read_keys(self.path)
        except (OSError, ValueError):
            keys = {}
        origin = Origin(dict(os.environ), self.path, keys, environment_gives_way(keys))
        names = ("slack_app_token", "slack_client_id", "slack_client_secret")
        try:
            settings = ValuesOnly(**{name: origin.of(name)[1] for name in names})
        except ValidationError:  # a value the bridge refuses: it starts in neither mode, and `check` says why
            return None
        if settings.slack_app_token is None or settings.oauth:
            return None
        return origin.of("slack_app_token")[2]

    def _may_write(self) -> None:
        folder = self.path.absolute().parent
        if not folder.is_dir():
            raise InitStopped(
                f"cannot write {self.path}: the folder {folder} does not exist. Create it, or pass --config with a "
                "file in a folder that exists. Nothing was written.",
                2,
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InitStopped(
                f"cannot write {self.path}: this user may not create files in {folder}. Pass --config with a file "
                "in a folder you may write. Nothing was written.",
                2,
            )
        if self.path.is_dir():
            raise InitStopped(
                f"{self.path} is a folder: pass --config with a file's path, such as {self.path / 'config.toml'}. "
                "Nothing was written.",
                2,
            )
        if not self.path.exists() or self.args.force:
            return
        if not self.interactive:
            raise InitStopped(
                f"{self.path} already exists; pass --force to overwrite it. Nothing was written." + self._no_terminal(),
                2,
            )
        if input(f"{self.path} already exists. Overwrite it? [y/N] ").strip().lower() not in ("y", "yes"):
            raise InitStopped(
                f"Kept {self.path} as it was. `python -m bridge check` checks what it holds; "
                "`python -m bridge init --force` starts over.",
                0,
            )

    def _no_terminal(self) -> str:
        """Why nothing was asked, when init was not told --non-interactive: its input is no terminal (a `docker
        run` without -it, a CI step), where a question could not be answered."""
        if self.args.non_interactive:
            return ""
        return (
            "\ninit asks its questions only in a terminal, and its input is not one here: run it in one (with Docker, "
            "`docker run -it …`), or give the settings as flags or environment variables (see --help)."
        )

    def _given(self, q: Question) -> str | None:
        value = getattr(self.args, q.key, None) or os.environ.get(q.variable)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def _ask(self, q: Question, check: Callable[[str], Verdict]) -> str:
        """The flag, the variable or a prompt; checked at once, asked again (interactive) until it passes."""
        value = self._given(q)
        while True:
            if value is None:
                value = self._prompt(q) if self.interactive else (q.default or "")
            if value == "" and not q.optional:
                if not self.interactive:
                    raise InitStopped(f"missing {q.flag} (or {q.variable}). Nothing was written.", 2)
                where = f"; find it in {q.where}" if q.where else ""
                print(f"Nothing typed: the bridge needs its {q.label}{where}.")
                value = None
                continue
            try:
                ok, lines = check(value)
            except _Invalid as invalid:  # the answers together are no settings (a URL's password and a key)
                ok, lines = False, [f"FAIL {q.variable.lower().split('_')[0]}: {line}" for line in invalid.lines]
            for line in lines:
                print(line)
            if ok:
                self.answers[q.key] = value
                return value
            if not self.interactive:
                raise InitStopped(f"{q.variable} did not pass its check (see above). Nothing was written.")
            value = None

    def _prompt(self, q: Question) -> str:
        shown = f"{q.label} [{q.default}]: " if q.default else f"{q.label}: "
        answer = getpass.getpass(shown) if q.secret else input(shown)
        return answer.strip() or (q.default or "")

    def _settings(self, **values: Any) -> Settings:
        """What the checks run with: the answers (and `values`, the one being checked) over the environment over
        the keys kept from the file replaced, as the bridge started from the file written will load them (its
        runner and conversations, LETTA_LOOKUP_TIMEOUT's wait). The environment's values of the settings init asks
        about are left out, as its answers are what it writes: an exported one is named at the end instead."""
        merged: dict[str, Any] = {**self.extra, **self.answers, **values}
        merged.pop(PUBLIC_URL.key, None)
        kept = self._kept
        try:
            return planned_settings(kept, merged, ASKED)
        except ValidationError as exc:  # in plain words, which never repeat a secret (pydantic's would)
            environ = {name: value for name, value in os.environ.items() if name.lower() not in ASKED}
            origin = Origin(environ, self.path, kept, environment_gives_way(kept))
            exported = [origin.of(name)[0] for name in _refused(exc) if origin.of(name)[2] == "environment"]
            raise _Invalid(plain_errors(exc, Settings, origin), exported) from None
        except SourceError as exc:  # an exported variable that is not the JSON it must be
            raise _Invalid([unparsed(exc, None)]) from None

    @cached_property
    def _kept(self) -> dict[str, Any]:
        """The settings the file being replaced will keep (none init asks about), as a load will read them; none
        where they only together cannot be, which `_write` says."""
        asked = {PUBLIC_URL.key, *ASKED, *self.extra}
        old = replaced(self.path, self.extra, asked)
        return {} if "" in old.refused else kept_values(old.kept)

    def _check_slack(self, token: str) -> Verdict:
        from bridge.checks import slack_checks

        if wrong_kind(SLACK_BOT_TOKEN, token) is not None:  # a rotating bot token (xoxe.xoxb-) is one too
            if token.startswith(tuple(prefix for prefix, _ in TOKEN_KINDS)):  # another Slack token, named by its kind
                return False, [f"FAIL slack: {gap(SLACK_BOT_TOKEN, token)}"]
            return False, [f"FAIL slack: a bot token starts with xoxb-. Find it in {SLACK_BOT_TOKEN.where}."]
        settings = self._settings(slack_bot_token=token)
        print("Checking the token with Slack…", flush=True)
        checks = asyncio.run(slack_checks(settings))
        # A missing scope is said, but the token works: reinstalling from the manifest above fixes it.
        return checks[0].ok, [c.line() for c in checks]

    def _check_letta_url(self, url: str) -> Verdict:
        from bridge.checks import letta_checks

        problem = (
            url_problem(LETTA_URL.variable, url, LETTA_SCHEMES)
            or letta_path_problem(LETTA_URL.variable, url)
            or letta_query_problem(LETTA_URL.variable, url)
        )
        if problem:
            return False, [f"FAIL letta: {problem}"]
        # With the key when it is given: an App Server with a capability token refuses even its info without it.
        settings = self._settings(letta_base_url=url, letta_api_key=self._given(LETTA_KEY))
        wait = f"waiting up to {settings.letta_lookup_timeout:g} s for an answer"
        print(f"Checking the Letta server at {shown_url(url)} ({wait})…", flush=True)
        checks = asyncio.run(letta_checks(settings, with_key=False))
        lines = [c.line() for c in checks]
        if settings.letta_api_key is None and checks[0].detail.endswith("needs its capability token"):
            lines[0] += ": you will be asked for it next" if self.interactive else f": give it as {LETTA_KEY.flag}"
        return checks[0].ok, lines

    def _check_letta_key(self, key: str) -> Verdict:
        from bridge.checks import letta_checks

        settings = self._settings(letta_api_key=key or None)
        print("Checking the key with the Letta server…" if key else "Checking that Letta needs no key…", flush=True)
        checks = asyncio.run(letta_checks(settings))
        # The server's line was said at the URL: again only when it fails (an App Server refusing the key's absence).
        return all(c.ok for c in checks), [c.line() for c in checks if c.name != "letta" or not c.ok]

    def _write(self) -> None:
        values = {k: v for k, v in self.answers.items() if v and k != PUBLIC_URL.key}
        values.update(self.extra)
        decided = {q.key for q in (PUBLIC_URL, BOT_TOKEN, LETTA_URL, LETTA_KEY)} | set(self.extra)
        if self.answers.get(SIGNING_SECRET.key) or self._signing_secret() is SIGNING_SECRET:
            decided.add(SIGNING_SECRET.key)  # skipped in Socket Mode: the file's own, if any, is kept
        old = replaced(self.path, values, decided)
        try:
            write_private(self.path, config_text(values, old.kept))
        except OSError as exc:
            raise InitStopped(f"cannot write {self.path}: {exc.strerror or exc}. Nothing was written.") from None
        print(f"\nWrote {self.path} (mode 600).")
        if old.kept:
            print(f"Kept what init does not ask about from the file it replaced: {', '.join(old.kept)}.")
        if old.lost:
            print(f"Not kept from the file it replaced (write them again if they are wanted): {', '.join(old.lost)}.")
        if dropped := [line for key, line in old.refused.items() if key]:
            print(
                "Not kept from the file it replaced, as the bridge would refuse them (write them again, corrected, "
                "if they are wanted):",
                *(f"  {line}" for line in dropped),
                sep="\n",
            )
        if "" in old.refused and starts_here(self.path):
            print(
                f"Note: {self.path} alone would not start the bridge ({old.refused[''].rstrip('.')}); it starts here "
                "because the environment sets what the file lacks: keep it set where the bridge runs."
            )
        elif "" in old.refused:  # settings that only together cannot be: no one key to leave out
            raise InitStopped(
                f"the bridge will not start from {self.path} as written: {old.refused[''].rstrip('.')}. Correct it "
                "(every key is in config.example.toml), then run `python -m bridge check`."
            )

    def _manifest(self, public: str) -> None:
        """The Slack app comes first: its manifest (with the URL filled in when given), then where its secrets are."""
        command = self._command()
        print("\nCreate the Slack app at https://api.slack.com/apps -> Create New App -> From a manifest, and paste:")
        print("-" * 100)
        print(manifest(public or EXAMPLE_URL, command), end="")
        print("-" * 100)
        if not public:
            print(f"Replace {EXAMPLE_URL} with the bridge's public URL (or use Socket Mode: see README.md).")
        else:
            print(f"Slack will send events, {command} and the menu's clicks to {request_url(public)}.")
        if self.interactive and self._signing_secret() is SOCKET_SIGNING_SECRET:
            print(
                "Then install the app to your workspace (Install App), and copy its Bot User OAuth Token (OAuth & "
                "Permissions); in Socket Mode the Signing Secret may be skipped.\n"
            )
        elif self.interactive:
            print(
                "Then install the app to your workspace (Install App), and copy its two secrets: the Bot User OAuth "
                "Token (OAuth & Permissions) and the Signing Secret (Basic Information > App Credentials).\n"
            )

    def _command(self) -> str:
        """The slash command a bridge started from the file written answers (SLACK_COMMAND, else the replaced file's
        kept slack_command, else /letta): an app made from a manifest naming another sends one nobody answers."""
        try:
            return self._settings().slack_command
        except _Invalid:  # `run` stops first on settings a load refuses: not reached in practice
            return str(Settings.model_fields["slack_command"].default)

    def _finish(self) -> None:
        command = self._command()
        python = os.path.relpath(sys.executable)
        python = sys.executable if python.startswith("..") else python
        prefix = "" if self.path == Path(DEFAULT_CONFIG_FILE) else f"BRIDGE_CONFIG={shlex.quote(str(self.path))} "
        source = self._socket_token()  # from the file just written: Socket Mode as the bridge will decide it
        print("\nStart the bridge (from this folder):")
        print(f"  {prefix}{shlex.quote(python)} -m bridge {'socket' if source else 'serve'}")
        if source == "file":
            print(f"Socket Mode's app-level token is in {self.path} (slack_app_token, kept from the file replaced).")
        elif source:
            print(f"Keep SLACK_APP_TOKEN set in the environment there: init does not write it to {self.path}.")
        print(f"Then invite @letta to a channel and type `{command} connect` there.")
        settings = {k: v for k, v in self.answers.items() if k != PUBLIC_URL.key}  # the public URL is no setting
        for variable in overridden(self.path, settings):
            print(
                f"{variable} is exported with another value, and the environment wins over {self.path}: run "
                f"`unset {variable}` (or export the new value) before starting."
            )


def _refused(exc: ValidationError) -> list[str]:
    """The settings a validation error refuses, each once, in its order."""
    names = (str(err["loc"][0]) for err in exc.errors() if err["loc"])
    return list(dict.fromkeys(name for name in names if name in Settings.model_fields))


def _unset(exported: list[str]) -> str:
    """How to clear refused exported variables: init does not ask about them, so no answer of its replaces them."""
    if not exported:
        return ""
    one = len(exported) == 1
    return (
        f"{' and '.join(exported)} {'is' if one else 'are'} exported: correct {'it' if one else 'them'} or run "
        f"`unset {' '.join(exported)}`, then run init again. "
    )
