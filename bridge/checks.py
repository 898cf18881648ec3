"""`python -m bridge check`: one line per setting and connection, in plain words."""

from __future__ import annotations

import os
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from bridge.app import letta_client, slack_client
from bridge.config import Settings, missing
from bridge.letta.chooser import runner_for_version
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.logs import shown_url
from bridge.store import StoreError, open_store
from bridge.store.base import display_url

REQUIRED_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "chat:write.customize",
    "reactions:write",
    "users:read",
    "channels:read",
)


# Hosts whose file system is wiped on restart or deploy: (marker variable, platform, how to attach Postgres,
# whether a volume can keep the file).
EPHEMERAL_HOSTS = (
    ("DYNO", "Heroku", "heroku addons:create heroku-postgresql:essential-0", False),
    ("K_SERVICE", "Cloud Run", "create a Cloud SQL for PostgreSQL instance and set DATABASE_URL to it", False),
    ("RENDER", "Render", "create a Render PostgreSQL database and set DATABASE_URL to its internal URL", True),
    ("FLY_APP_NAME", "Fly.io", "fly postgres create, then fly postgres attach (it sets DATABASE_URL)", True),
    ("RAILWAY_ENVIRONMENT", "Railway", "add a PostgreSQL service, DATABASE_URL=${{Postgres.DATABASE_URL}}", True),
)


@dataclass(frozen=True)
class Check:
    """One line of `check`. A warning passes (ok) but is shown as `warn`: something to act on soon."""

    ok: bool
    name: str
    detail: str
    warning: bool = False

    def line(self) -> str:
        mark = "warn" if self.warning else ("ok  " if self.ok else "FAIL")
        return f"{mark} {self.name}: {self.detail}"


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    gaps = missing(settings, "serve")
    checks.append(Check(not gaps, "settings", "; ".join(gaps) if gaps else "everything `serve` needs is set"))
    if settings.slack_app_token is None:
        checks.append(Check(True, "socket mode", "SLACK_APP_TOKEN not set (only needed for `socket`)"))
    checks.extend(await slack_checks(settings))
    checks.extend(await letta_checks(settings))
    checks.append(await _database(settings))
    if settings.database_url.startswith("sqlite:"):
        checks.extend(ephemeral_sqlite(dict(os.environ)))
    return checks


def ephemeral_sqlite(environ: dict[str, str]) -> list[Check]:
    """A warning when SQLite runs on a host known to wipe its disk: bindings and delivery records go with it."""
    for variable, platform, attach, volume_possible in EPHEMERAL_HOSTS:
        if environ.get(variable):
            unless = " unless the file is on a persistent volume" if volume_possible else ""
            detail = (
                f"SQLite on {platform} ({variable} is set): its file system is wiped on every restart and deploy"
                f"{unless}, and with it every channel binding and delivery record. Attach PostgreSQL ({attach}), "
                "make sure DATABASE_URL points to it (postgres://...), and restart; see README, "
                '"Deploying on a PaaS with Postgres".'
            )
            return [Check(True, "database storage", detail, warning=True)]
    return []


async def slack_checks(settings: Settings) -> list[Check]:
    """auth.test with the bot token, then the scopes it was granted (also used by `init`)."""
    if settings.slack_bot_token is None:
        return [Check(False, "slack", "SLACK_BOT_TOKEN is not set, so Slack cannot be checked")]
    client = slack_client(settings)
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else "unknown"
        return [Check(False, "slack", f"auth.test at {settings.slack_api_url} failed: {error}")]
    except Exception as exc:
        return [Check(False, "slack", f"cannot reach Slack at {settings.slack_api_url}: {type(exc).__name__}")]
    who = f"as @{response.get('user')} in {response.get('team')} ({response.get('team_id')})"
    checks = [Check(True, "slack", f"auth.test {who}")]
    header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes") or ""
    have = {s.strip() for s in str(header).split(",") if s.strip()}
    lacking = [s for s in REQUIRED_SCOPES if s not in have]
    if lacking:
        checks.append(
            Check(
                False, "slack scopes", f"missing {', '.join(lacking)}: reinstall the app from slack-app-manifest.yaml"
            )
        )
    else:
        checks.append(Check(True, "slack scopes", ", ".join(REQUIRED_SCOPES)))
    return checks


async def letta_checks(settings: Settings, with_key: bool = True) -> list[Check]:
    """GET /v1/health/, then (with_key) a list call that the key must be accepted for, and the runner auto picks."""
    client = letta_client(settings)
    url = shown_url(settings.letta_base_url)
    try:
        try:
            version = (await client.health()).version
        except LettaError as exc:
            return [Check(False, "letta", exc.explain("the health check"))]
        checks = [Check(True, "letta", f"reachable at {url}, version {version}")]
        if not with_key:
            return checks
        try:
            await client.list_agents(limit=1)
            checks.append(Check(True, "letta key", "accepted (listed agents)"))
        except LettaError as exc:
            checks.append(Check(False, "letta key", exc.explain("the agent list")))
        auto = runner_for_version(version)
        why = "below 0.12.0: the server runs groups" if auto == "server" else "0.12.0 or later: the bridge runs groups"
        default = settings.letta_group_runner
        checks.append(Check(True, "runner", f"LETTA_GROUP_RUNNER={default}; auto picks {auto} ({why})"))
        checks.append(await _conversations(client, settings))
        return checks
    finally:
        await client.aclose()


async def _conversations(client: LettaClient, settings: Settings) -> Check:
    """Whether each Slack thread can be a Letta conversation, or every thread shares each agent's one context."""
    try:
        has = await client.has_conversations()
    except LettaError as exc:
        return Check(False, "conversations", exc.explain("the conversation list"))
    if not has:
        return Check(
            True,
            "conversations",
            "this server has none: the bridge keeps one context per agent for all threads of a channel, "
            "and runs a channel's turns one at a time",
        )
    if not settings.letta_conversations:
        return Check(True, "conversations", "the server has them, but LETTA_CONVERSATIONS=false: one context per agent")
    off = ", ".join(settings.letta_conversations_except)
    return Check(
        True,
        "conversations",
        "each Slack thread is a Letta conversation per agent (bridge-run channels); threads run in parallel"
        + (f"; off in {off}" if off else ""),
    )


async def _database(settings: Settings) -> Check:
    try:
        store = open_store(settings.database_url)
        await store.open()
    except StoreError as exc:
        return Check(False, "database", str(exc))
    try:
        version = await store.schema_version()
        bindings = await store.list_bindings()
        where = display_url(settings.database_url)
        shown = "; ".join(f"{b.channel_id} {b.target.pattern}/{b.runner}" for b in bindings[:10])
        more = f"; and {len(bindings) - 10} more" if len(bindings) > 10 else ""
        listing = f": {shown}{more}" if bindings else ""
        return Check(True, "database", f"{where} (schema v{version}, {len(bindings)} channel bindings{listing})")
    finally:
        await store.close()
