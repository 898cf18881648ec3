"""Command line: init | serve | socket | check | channels connect|list|disconnect | workspaces list|remove.

Exit status: 0 success, 1 a check or a lookup failed, 2 settings or usage are wrong. Errors are plain lines
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge import __version__
from bridge import init as setup
from bridge.cli_channels import describe, list_channels
from bridge.cli_ids import CliError, channel_arg, install_arg, served_as, team_arg, workspace_of
from bridge.config import Settings
from bridge.config_load import SettingsError, load_settings
from bridge.domain import PATTERNS, RUNNER_CHOICES
from bridge.logs import masked, setup_logging
from bridge.pattern_words import manager_role, members_heading
from bridge.proxies import check_environment
from bridge.requirements import missing, set_them_up, wrong_kinds
from bridge.settings_secrets import secrets
from bridge.store import Store, open_store
from bridge.store.base import database_trouble, trouble_words
from bridge.store.crypto import CipherError
from bridge.store.database_url import database_name, missing_sqlite_file

if TYPE_CHECKING:
    from bridge.ingress_process import IngressProcess

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Talk to a Letta multi-agent group from Slack. Settings come from environment "
        "variables over config.toml (see config.example.toml).",
    )
    parser.add_argument("--version", action="version", version=f"letta-slack-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    setup.add_arguments(
        sub.add_parser("init", help="first run: ask for each setting, check it at once, write config.toml")
    )
    sub.add_parser("serve", help="serve Slack's HTTP requests on $PORT (POST /slack/events, GET /healthz)")
    sub.add_parser("socket", help="connect over Socket Mode (SLACK_APP_TOKEN), for local use with no public URL")
    sub.add_parser("check", help="check each setting and connection; exit 0 only if all pass")
    spaces = sub.add_parser("workspaces", help="OAuth mode: the workspaces that installed the app")
    wsub = spaces.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("list", help="each installed workspace (or Enterprise Grid org), its channels and Letta server")
    remove = wsub.add_parser(
        "remove", help="revoke a workspace's tokens at Slack, delete them and end its work, as an uninstall does"
    )
    remove.add_argument("workspace", help="a workspace id (T0123ABC), or an org id (E0123ABC) for an org-wide install")
    channels = sub.add_parser("channels", help="bind Slack channels to Letta groups or agents")
    csub = channels.add_subparsers(dest="action", required=True, metavar="ACTION")
    connect = csub.add_parser("connect", help="bind a channel to group-<uuid>, or to agent-<uuid> [agent-<uuid> ...]")
    connect.add_argument("channel", help="Slack channel id, e.g. C0123ABC (channel details > About)")
    connect.add_argument("target", nargs="+", help="one group id, or agent ids in speaking order")
    connect.add_argument("--runner", choices=RUNNER_CHOICES, default="auto", help="who runs the group's turn")
    connect.add_argument("--team", help="Slack workspace id (default: the bot token's, from auth.test)")
    connect.add_argument(
        "--broadcast", action="store_true", help="every agent gets each message at once (bridge runner); fastest first"
    )
    connect.add_argument(
        "--pattern",
        choices=PATTERNS,
        help="agents only: the group pattern the bridge plays for them (a bridge-defined group; default: in order)",
    )
    connect.add_argument("--manager", metavar="AGENT_ID", help="supervisor, dynamic: the manager (not in the list)")
    connect.add_argument("--max-turns", type=int, help="round_robin, dynamic: sends per message in all")
    connect.add_argument("--termination-token", help="dynamic: the manager's word that ends the turn early")
    listing = csub.add_parser("list", help="list bound channels")
    listing.add_argument("--team", help="only this workspace")
    disconnect = csub.add_parser("disconnect", help="remove a channel's binding")
    disconnect.add_argument("channel")
    disconnect.add_argument("--team", help="Slack workspace id (default: the bot token's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init":  # before settings are loaded: they are what init sets up
        setup_logging("ERROR", "text", [])
        if problems := check_environment():  # init asks Slack and Letta too, through the same proxies
            for line in problems:
                _say_error(line, False)
            return 2
        return setup.run_init(args)
    try:
        settings = load_settings()
    except SettingsError as exc:
        # No settings to read LOG_FORMAT from: the environment's, which is where a platform sets it.
        json_logs = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
        as_log_lines = args.command in ("serve", "socket") and json_logs
        if as_log_lines:
            setup_logging("ERROR", "json", [])  # no secret of a setting that was refused is in its words
        lines = exc.lines
        if args.command in ("serve", "socket") and exc.partial is not None:  # what else it lacks, in the same run
            more = missing(exc.partial, args.command)
            lines = lines + [m for m in more if m.split(":")[0].removeprefix("missing ") not in exc.refused]
        for line in lines:
            _say_error(line, as_log_lines)
        return 2
    # One-shot commands speak in their own plain lines; their logs would only repeat them.
    daemon = args.command in ("serve", "socket")
    level = settings.log_level if daemon or settings.log_level.upper() == "DEBUG" else "ERROR"
    setup_logging(level, settings.log_format, secrets(settings))
    try:
        ingress = _fork_ingress(args, settings)
    except CliError as exc:
        _say_error(str(exc), settings.log_format == "json")
        return exc.code
    try:
        return asyncio.run(_dispatch(args, settings, ingress))
    except CliError as exc:
        _say_error(str(exc), daemon and settings.log_format == "json")
        return exc.code
    except CipherError as exc:  # a secret stored encrypted (a workspace's own Letta key) that cannot be read
        unset = (
            "BRIDGE_ENCRYPTION_KEY is not set, so a secret stored encrypted (a workspace's own Letta server or key, "
            f"set with {settings.slack_command} setup in Slack) cannot be read: set it to the key the bridge runs with"
        )
        said = unset if settings.bridge_encryption_key is None else str(exc)
        _say_error(said, daemon and settings.log_format == "json")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `check | head -1`: the reader has what it wanted; no traceback for the rest
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit is quiet
        return 1
    except Exception as exc:  # the store's words, or SQLite's and asyncpg's own errors said plainly
        if not database_trouble(exc):
            raise
        _say_error(trouble_words(exc), daemon and settings.log_format == "json")
        return 1
    finally:
        if ingress is not None:
            ingress.end()


def _fork_ingress(args: argparse.Namespace, settings: Settings) -> IngressProcess | None:
    """`serve` with HTTP_INGRESS=process: the ingress process, forked before any event loop or thread runs (a
    fork copies only the forking thread); it listens once the bridge has started."""
    if args.command != "serve":
        return None
    from bridge.ingress_process import IngressProcess, forks

    _require(settings, "serve")
    if not forks(settings):
        return None
    try:
        return IngressProcess.fork(settings)
    except OSError as exc:  # no process or file left to make one with (ulimit -u, -n)
        raise CliError(
            f"cannot start the ingress process ({exc.strerror or exc}); free some, or set HTTP_INGRESS=thread"
        ) from None


def _say_error(message: str, as_log_line: bool) -> None:
    """The one line a failed command ends with: `error: ...`, or for `serve` and `socket` with LOG_FORMAT=json a
    log line like every other (a log pipeline parses each line, and this is the one an operator needs most). Both
    are masked alike: a secret in a start-up error's words is never written."""
    if as_log_line:
        logging.getLogger(__name__).error(message)
    else:
        print(f"error: {masked(message)}", file=sys.stderr)


def _require(settings: Settings, mode: str) -> None:
    # A token in the wrong setting is wrong whichever mode runs: `check` refuses it too.
    lines = list(dict.fromkeys(missing(settings, mode) + wrong_kinds(settings)))  # type: ignore[arg-type]
    if lines:
        as_log_lines = settings.log_format == "json"  # `serve` and `socket`, whose every line is a log line
        for line in lines:
            _say_error(line, as_log_lines)
        if as_log_lines:
            logging.getLogger(__name__).error(set_them_up(settings, mode))  # type: ignore[arg-type]
        else:
            print(set_them_up(settings, mode), file=sys.stderr)  # type: ignore[arg-type]
        raise SystemExit(2)


async def _dispatch(args: argparse.Namespace, settings: Settings, ingress: IngressProcess | None = None) -> int:
    if args.command in ("serve", "socket"):
        from bridge.app import StartError
        from bridge.serve import serve_http, serve_socket

        _require(settings, args.command)
        try:
            if args.command == "serve":
                await serve_http(settings, ingress)
            else:
                await serve_socket(settings)
        except StartError as exc:
            raise CliError(str(exc)) from None
        return 0
    if args.command == "check":
        from bridge.checks import run_checks

        checks = await run_checks(settings)
        for check in checks:
            print(check.line())
        if any(c.name == "settings" and not c.ok for c in checks):
            # As run_checks judges: with SLACK_APP_TOKEN set, Socket Mode's advice (init never asks that token).
            socket = settings.slack_app_token is not None and not settings.oauth
            print(set_them_up(settings, "socket" if socket else "serve"), file=sys.stderr)
            return 2
        return 0 if all(c.ok for c in checks) else 1
    if args.command == "workspaces":
        return await _workspaces(args, settings)
    return await _channels(args, settings)


async def _workspaces(args: argparse.Namespace, settings: Settings) -> int:
    from bridge.workspace_admin import list_workspaces, remove_workspace

    if not settings.oauth:
        raise CliError(
            "OAuth mode is off (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are not both set): this bridge serves the one "
            "workspace of SLACK_BOT_TOKEN, so there are no installed workspaces to list or remove; docs/workspaces.md "
            "says how to serve many.",
            2,
        )
    if args.action == "list":
        for line in await list_workspaces(settings):
            print(line)
        return 0
    key = install_arg(args.workspace)
    said = await remove_workspace(settings, key)
    if said is None:
        raise CliError(f"{key} has not installed the app (`python -m bridge workspaces list` shows them).")
    print(said)
    return 0


async def _channels(args: argparse.Namespace, settings: Settings) -> int:
    team_arg(args.team)  # ids in their form first, with or without a database: a mistyped one is exit 2
    if args.action == "disconnect":
        channel_arg(args.channel)
    absent = missing_sqlite_file(settings.database_url)
    if args.action != "connect" and absent is not None:  # nothing to list or remove: create nothing either
        print(f"no channels are connected yet: {absent} does not exist yet (serve or channels connect creates it)")
        return 0 if args.action == "list" else 1
    store = open_store(settings.database_url)
    if args.action == "connect":  # it opens the store only once the binding is accepted
        return await _connect(args, settings, store)
    await store.open()
    try:
        if args.action == "list":
            return await list_channels(store, settings, team_arg(args.team))
        channel = channel_arg(args.channel)  # its form first: a mistyped id is said before Slack is asked anything
        team = await workspace_of(settings, args.team)
        previous = await store.delete_binding(team, channel, actor="cli")
        if previous is None:
            raise CliError(f"{args.channel} is not connected.")
        print(f"disconnected {args.channel} from {describe(previous)}")
        return 0
    finally:
        await store.close()


async def _connect(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    """Every check first, ids as given (exit 2) and then as Letta knows them (exit 1); the database is opened,
    and a SQLite file created, only to save a binding that passed them all."""
    from bridge.clients import letta_client, letta_kind_told
    from bridge.configure import ConfigError, Configurator
    from bridge.domain import Pattern
    from bridge.letta.chooser import RunnerChooser
    from bridge.letta.errors import LettaError
    from bridge.targets import TargetError, check_ids, check_pattern

    channel = channel_arg(args.channel)
    lines = missing(settings, "letta")
    if lines:
        raise CliError(lines[0], 2)
    if settings.oauth:  # the workspace's agents are looked up where it is served from
        settings = await served_as(settings, await workspace_of(settings, args.team))
    told = await letta_kind_told(settings, lookups=True)
    unreached = told if isinstance(told, LettaError) else None  # then its kind is not known: ids of either pass
    client = letta_client(settings, kind=None if isinstance(told, LettaError) else told, lookups=True)
    configurator = Configurator(settings, store, client, RunnerChooser(client, settings.letta_group_runner))
    pattern = Pattern(args.pattern, args.manager, args.max_turns, args.termination_token)
    try:
        check_ids(args.target, client.app_server, client.base_url, kind_known=unreached is None)
        if not args.broadcast:  # prepare words broadcast's own clash with --pattern first
            check_pattern(args.target, pattern, client.app_server)
        team = await workspace_of(settings, args.team)
        if unreached is not None:
            raise CliError(unreached.for_operator("the lookup of the agents"), 1)
        prepared = await configurator.prepare(
            team, channel, args.target, actor="cli", runner=args.runner, broadcast=args.broadcast, pattern=pattern
        )
    except TargetError as exc:
        raise CliError(exc.for_operator, 2) from None
    except ConfigError as exc:
        raise CliError(exc.for_operator, 2 if exc.usage else 1) from None
    finally:
        await client.aclose()
    await store.open()
    try:
        result = await configurator.save(prepared)
    finally:
        await store.close()
    target = result.binding.target
    if target.kind == "group":
        print(f"group {target.group_id}: {target.description or '(no description)'}")
    print(f"pattern: {target.pattern}")
    if target.manager is not None:
        print(f"{manager_role(target)}: {target.manager.name}  {target.manager.id}")
    if target.kind == "agents" and target.max_turns is not None:
        print(f"max turns: {target.max_turns}")
    if target.kind == "agents" and target.termination_token:
        print(f"termination token: {target.termination_token}")
    print(f"{members_heading(target)}:")
    for agent in target.agents:
        print(f"  {agent.name}  {agent.id}")
    print(f"runner: {result.use}")
    saved = database_name(settings.database_url)
    if result.unchanged:
        print(f"{channel} in workspace {result.binding.team_id} was connected to this already: nothing changed")
        return 0
    if result.replaced is not None:
        print(f"replaced: {describe(result.replaced)}")
    print(f"connected {channel} in workspace {result.binding.team_id} (saved in {saved})")
    return 0
