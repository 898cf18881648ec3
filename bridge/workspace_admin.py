"""OAuth mode from the host: `workspaces list|remove` and the lines `check` prints for each installed workspace."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography.fernet import Fernet
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation

from bridge.check_line import Check
from bridge.config import Settings
from bridge.letta.errors import Kind, LettaError, upper_first
from bridge.logs import shown_url
from bridge.store import Store, StoreError, open_store
from bridge.store.crypto import Cipher, CipherError
from bridge.store.database_url import missing_sqlite_file
from bridge.store.installations import BridgeInstallationStore, InstalledWorkspace
from bridge.store.schema import LATEST
from bridge.store.workspace_letta import SEALED_URL

if TYPE_CHECKING:
    from bridge.letta.client import LettaClient
    from bridge.letta.errors import KeyOrigin

# What to do when Slack did not revoke a token: removing the app in Slack ends every token it holds.
ENDS = "Removing the app from the workspace in Slack (its admins can) ends its tokens for certain."
# auth.revoke's refusals (reference/slack/web-api/auth.revoke.json), said in words after the error code.
REFUSALS = {
    "token_revoked": " (it was revoked already, or the app was removed from the workspace)",
    "account_inactive": " (the workspace or its bot user is gone)",
    "invalid_auth": " (Slack does not take this token, or not from this host's address)",
    "token_expired": " (a rotating token past its expiry)",
}


def installation_store(settings: Settings, store: Store) -> BridgeInstallationStore:
    """Listing and removing decrypt nothing: without the key, a throwaway one stands in."""
    key = settings.bridge_encryption_key.get_secret_value() if settings.bridge_encryption_key else None
    days = None if settings.uninstalled_bindings == "keep" else settings.uninstalled_bindings_days
    return BridgeInstallationStore(store, Cipher(key or Fernet.generate_key().decode()), purge_days=days)


def _when(seconds: float | None) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def describe(found: InstalledWorkspace) -> str:
    kind = f"org-wide install of {found.enterprise_id}" if found.is_enterprise_install else "workspace"
    org = f" in org {found.enterprise_id}" if found.enterprise_id and not found.is_enterprise_install else ""
    return f"{found.key} {found.name!r} ({kind}{org})"


async def served_settings(settings: Settings, team_id: str) -> Settings | None:
    """OAuth mode, from the host: the settings the bridge serves an installed workspace with (its own Letta server
    and key, set with `/letta setup`, else the environment's); None when it has not installed the app."""
    if missing_sqlite_file(settings.database_url) is not None:
        return None
    store = open_store(settings.database_url)
    await store.open()
    try:
        installs = installation_store(settings, store)
        if await installs.installed(team_id) is None:
            return None
        own = await installs.letta(team_id)
    finally:
        await store.close()
    return settings if own is None else own.applied_to(settings)


async def list_workspaces(settings: Settings) -> list[str]:
    if missing_sqlite_file(settings.database_url) is not None:
        return ["no workspace has installed the app yet (the database does not exist yet)"]
    store = open_store(settings.database_url)
    await store.open()
    try:
        installs = installation_store(settings, store)
        found = await installs.installations()
        if not found:
            return ["no workspace has installed the app yet: send its admins to https://<your host>/slack/install"]
        lines = [f"{'workspace':<12} {'kind':<10} {'org':<12} {'installed':<17} {'channels':>8}  letta  name"]
        for install in found:
            teams = await installs.workspaces_of(install)
            channels = sum([len(await store.list_bindings(team)) for team in teams])
            # An org-wide install serves many workspaces, each on the default server or one of its own.
            own = {await _letta_shown(settings, installs, team) for team in teams}
            letta = ", ".join(sorted(own)) or "default"
            kind = "org-wide" if install.is_enterprise_install else "workspace"
            lines.append(
                f"{install.key:<12} {kind:<10} {install.enterprise_id or '-':<12} {_when(install.installed_at):<17}"
                f" {channels:>8}  {letta}  {install.name}"
            )
        return lines
    finally:
        await store.close()


async def _letta_shown(settings: Settings, installs: BridgeInstallationStore, team: str) -> str:
    """The workspace's Letta server as the listing shows it, its key never decrypted: the listing works without
    BRIDGE_ENCRYPTION_KEY, which only a URL holding a password (sealed) needs."""
    url = await installs.letta_url(team)
    if url is None:
        return "default"
    if url.startswith(SEALED_URL):
        if settings.bridge_encryption_key is None:
            return "own Letta server (sealed: set BRIDGE_ENCRYPTION_KEY to read it)"
        try:
            url = installs.cipher.decrypt(url.removeprefix(SEALED_URL))
        except CipherError:
            return "own Letta server (sealed: BRIDGE_ENCRYPTION_KEY does not open it)"
    return shown_url(url)


async def remove_workspace(settings: Settings, key: str) -> str | None:
    """Delete a workspace's (or an org's) installation as an uninstall would, then revoke its tokens at Slack;
    None when it is not installed."""
    if missing_sqlite_file(settings.database_url) is not None:
        return None  # no database, so nothing installed: none is created for the question
    store = open_store(settings.database_url)
    await store.open()
    try:
        installs = installation_store(settings, store)
        found = next((i for i in await installs.installations() if key in (i.key, i.team_id)), None)
        if found is None:
            return None
        tokens = await _stored_tokens(settings, installs, found)  # read before they are deleted
        teams = await installs.workspaces_of(found) or ([found.team_id] if found.team_id else [])
        await installs.async_delete_all(enterprise_id=found.enterprise_id or None, team_id=found.team_id or None)
        gone = await installs.unserved(teams, found.enterprise_id or "")
        ended = {team: await installs.end_unfinished_turns(team) for team in gone}
        await installs.mark_removed(gone)
        withdrawn = await _withdraw(settings, store, installs, ended)
        kept = (
            "its channel bindings are kept (UNINSTALLED_BINDINGS=keep)"
            if installs.purge_days is None
            else f"its channel bindings are deleted after {installs.purge_days:g} days unless it installs again"
        )
        if teams and not gone:  # Grid: its org's org-wide install serves it still
            kept = f"its org {found.enterprise_id}'s org-wide install still serves it, so its channels stay connected"
        turns = f"{sum(len(turn_ids) for turn_ids in ended.values())} unfinished turns ended"
        removed = f"removed {describe(found)}: its tokens are deleted here, {turns}, {kept}.{withdrawn}"
    finally:
        await store.close()
    revoked = await revoke_at_slack(settings, tokens) if isinstance(tokens, dict) else tokens
    return f"{removed}\n{revoked}"


async def _withdraw(
    settings: Settings, store: Store, installs: BridgeInstallationStore, ended: dict[str, list[int]]
) -> str:
    """Deny on Letta the tool calls the ended turns left waiting, as an uninstall does (Workspaces.removed): else
    the agent takes no message, from any workspace, until a decision nobody can make. Each workspace asks its own
    server, with a client of its own closed afterwards; a server that did not answer is not asked again for a later
    workspace (an org-wide install's), so the command waits on it once. What could not be done is said once per
    server and cause, naming the workspaces, never raised: the workspace is removed already."""
    from bridge.clients import workspace_key
    from bridge.letta.errors import ENV_KEY
    from bridge.stop_end import withdraw_ended
    from bridge.store.approvals import ApprovalStore
    from bridge.workspaces import REMOVED

    approvals = ApprovalStore(store)
    down: dict[str, LettaError] = {}  # by server: did not answer
    unread: dict[str, list[str]] = {}  # why an own server's key cannot be read: its workspaces
    failed: dict[tuple[str, str], list[str]] = {}  # (server, what Letta answered, or "" for no answer): workspaces
    for team, turn_ids in ended.items():
        if not [r for turn_id in turn_ids for r in await approvals.for_turn(turn_id) if r.outcome is None]:
            continue  # nothing waits on Letta: its own server's key need not be read
        try:
            own = await installs.letta(team)
        except CipherError as exc:
            why = "BRIDGE_ENCRYPTION_KEY is not set" if settings.bridge_encryption_key is None else str(exc)
            unread.setdefault(why, []).append(team)
            continue
        ws_settings = settings if own is None else own.applied_to(settings)
        server = ws_settings.letta_base_url
        origin = ENV_KEY if own is None else workspace_key(settings)
        opened: list[LettaClient] = []
        client = partial(_one_shot, ws_settings, origin, opened)
        if server in down:
            client = partial(_known_down, down[server])
        try:
            error = await withdraw_ended(client, approvals, turn_ids, REMOVED)
        finally:
            for letta in opened:
                await letta.aclose()
        if error is None:
            continue
        if _silent(error):
            down[server] = error
        failed.setdefault((server, "" if server in down else _answered(error)), []).append(team)
    said = ""
    for why, teams in unread.items():
        said += (
            f" Tool calls its turns left waiting in {', '.join(teams)} on {'its' if len(teams) == 1 else 'their'} own"
            f" Letta server were not denied ({why}, so that server's key cannot be read): approve or deny them in"
            " Letta."
        )
    for (server, answered), teams in failed.items():
        if not answered:
            said += (
                f" Letta {shown_url(server)} did not answer, so the tool calls its turns left waiting in"
                f" {', '.join(teams)} were not denied: approve or deny them in Letta."
            )
        else:
            said += (
                f" The tool calls its turns left waiting in {', '.join(teams)} were not denied on Letta"
                f" {shown_url(server)}. {answered} Approve or deny them in Letta."
            )
    return said


async def _known_down(error: LettaError) -> LettaClient:
    """A server that did not answer for an earlier workspace: not asked again, so the command waits on it once."""
    raise error


async def _one_shot(settings: Settings, origin: KeyOrigin, opened: list[LettaClient]) -> LettaClient:
    """The client withdraw_ended asks for (only when a call waits), kept to be closed once it is done."""
    from bridge.clients import letta_client

    opened.append(letta_client(settings, lookups=True, key_origin=origin))
    return opened[-1]


async def _stored_tokens(
    settings: Settings, installs: BridgeInstallationStore, found: InstalledWorkspace
) -> dict[str, str] | str:
    """The installation's tokens by kind ("bot token"), or why they cannot be read (then nothing is revoked)."""
    if settings.bridge_encryption_key is None:
        return f"Its tokens were not revoked at Slack: BRIDGE_ENCRYPTION_KEY is not set, so they cannot be read. {ENDS}"
    try:
        full = await _installation(installs, found)
    except CipherError as exc:
        return f"Its tokens were not revoked at Slack: {exc}. {ENDS}"
    if full is None:
        return {}
    kinds = {"bot token": full.bot_token, "user token": full.user_token}
    return {kind: token for kind, token in kinds.items() if token}


async def revoke_at_slack(settings: Settings, tokens: dict[str, str]) -> str:
    """auth.revoke with each token, so that no copy of it works any more (deleting it here ends only ours); what
    Slack did, one sentence per token. A refusal or an unreachable Slack is said, never raised: the workspace is
    removed here already."""
    from bridge.clients import slack_client
    from bridge.slack.failures import slack_error

    if not tokens:
        return "It had no token to revoke at Slack."
    slack = slack_client(settings.model_copy(update={"slack_bot_token": None}), wait_out_limits=False)
    said = []
    for kind, token in tokens.items():
        try:
            answer = await slack.auth_revoke(token=token)
        except SlackApiError as exc:
            error = slack_error(exc)
            why = REFUSALS.get(error, "")
            said.append(f"Slack did not revoke its {kind}: it answered {error}{why}. {ENDS}")
            continue
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            said.append(f"Slack did not revoke its {kind}: Slack could not be reached ({type(exc).__name__}). {ENDS}")
            continue
        if answer.get("revoked") is True:
            said.append(f"Slack revoked its {kind}: it no longer works anywhere.")
        else:
            said.append(f"Slack did not revoke its {kind} (it answered revoked: false). {ENDS}")
    return " ".join(said)


async def workspace_checks(settings: Settings) -> list[Check]:
    """OAuth mode: each installed workspace's Slack token (auth.test) and its Letta server (health)."""
    from bridge.clients import letta_client, slack_client, workspace_key
    from bridge.letta.errors import ENV_KEY
    from bridge.slack.failures import slack_error

    if settings.bridge_encryption_key is None:
        return [Check(False, "workspaces", "BRIDGE_ENCRYPTION_KEY is not set, so no workspace's token can be read")]
    try:
        Cipher(settings.bridge_encryption_key.get_secret_value())
    except CipherError as exc:
        return [Check(False, "workspaces", str(exc))]
    if missing_sqlite_file(settings.database_url) is not None:
        return [Check(True, "workspaces", "none installed yet (the database does not exist yet)", warning=True)]
    store = open_store(settings.database_url, migrate=False)  # `check` changes nothing; the database line says why
    try:
        await store.open()
    except StoreError:
        return [Check(True, "workspaces", "not checked: the database line says why", warning=True)]
    checks: list[Check] = []
    try:
        schema = await store.schema_version()
        if schema > LATEST:
            return [Check(True, "workspaces", "not checked: the database line says why", warning=True)]
        if schema < LATEST:
            return [Check(True, "workspaces", "checked once `serve` has migrated the database", warning=True)]
        installs = installation_store(settings, store)
        found = await installs.installations()
        if not found:
            return [Check(True, "workspaces", "none installed yet: open /slack/install to add the app", warning=True)]
        checks.append(Check(True, "workspaces", f"{len(found)} installed"))
        for install in found:
            name = f"workspace {install.key}"
            try:
                full = await _installation(installs, install)
            except CipherError as exc:
                checks.append(Check(False, name, str(exc)))
                continue
            token = full.bot_token if full is not None else None
            expiring = install.expires_at is not None and install.expires_at < time.time()
            slack = slack_client(settings.model_copy(update={"slack_bot_token": None}), wait_out_limits=False)
            ok = True
            try:
                if expiring:
                    slack_state = "its rotating Slack token expired and is renewed on its next use"
                else:
                    await slack.auth_test(token=token)
                    slack_state = "Slack token accepted"
            except SlackApiError as exc:
                slack_state, ok = f"Slack refused its token ({slack_error(exc)})", False
            except Exception as exc:
                slack_state, ok = f"Slack unreachable ({type(exc).__name__})", False
            # Each workspace it serves (an org-wide install: each of the org's seen so far) on its own Letta server
            # or the default one: every server asked once.
            teams = await installs.workspaces_of(install)
            servers: dict[str, tuple[Settings, Any]] = {}
            for team in teams or [""]:
                own = await installs.letta(team) if team else None
                ws_settings, origin = settings, ENV_KEY
                if own is not None:
                    ws_settings, origin = own.applied_to(settings), workspace_key(settings)
                servers.setdefault(ws_settings.letta_base_url, (ws_settings, origin))
            letta_states = []
            for ws_settings, origin in servers.values():
                letta = letta_client(ws_settings, lookups=True, key_origin=origin)
                try:
                    version = (await letta.health()).version
                    letta_states.append(f"Letta {shown_url(ws_settings.letta_base_url)} version {version}")
                except LettaError as exc:
                    shown = shown_url(ws_settings.letta_base_url)
                    letta_states.append(f"Letta {shown}: {exc.for_operator('the health check')}")
                    ok = False
                finally:
                    await letta.aclose()
            channels = sum([len(await store.list_bindings(team)) for team in teams])
            letta_state = "; ".join(letta_states)
            checks.append(Check(ok, name, f"{describe(install)}: {slack_state}; {letta_state}; {channels} channels"))
        return checks
    finally:
        await store.close()


async def _installation(installs: BridgeInstallationStore, found: InstalledWorkspace) -> Installation | None:
    """The listed workspace's full installation, its tokens decrypted (CipherError when they cannot be)."""
    return await installs.async_find_installation(
        enterprise_id=found.enterprise_id or None,
        team_id=found.team_id or None,
        is_enterprise_install=found.is_enterprise_install,
    )


def _silent(error: LettaError) -> bool:
    """Whether nothing answered the denial: a timeout, or no server there (a redirect, a TLS or proxy failure did
    answer, and says what is wrong)."""
    return error.kind is Kind.TIMEOUT or (
        error.kind is Kind.UNREACHABLE and not (error.redirected or error.tls or error.proxy)
    )


def _answered(error: LettaError) -> str:
    """What Letta answered the denial, for the admin at the terminal: the command is not run again (the workspace
    is removed), so no "ask again"."""
    if error.kind is Kind.UNAUTHORIZED:
        return error.explain()  # the refused key, and who may set it (the environment's, or `/letta setup`'s)
    if error.kind is Kind.UNREACHABLE:
        return upper_first(error.for_operator("the denial")).rstrip(".") + "."
    if error.kind is Kind.DISCONNECTED:  # Letta may have taken it: never said as refused
        return "The connection to Letta dropped during the denial: it may or may not have been taken."
    detail = f": {error.detail}." if error.detail else "."
    if error.status:
        return f"Letta answered HTTP {error.status}{detail}"
    return f"Letta's answer could not be read{detail}"

