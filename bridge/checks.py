"""`python -m bridge check`: one line per setting and connection, in plain words."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from bridge.app import letta_client, slack_client
from bridge.config import Settings, missing
from bridge.letta.errors import LettaError
from bridge.letta.runners import runner_for_version
from bridge.store import StoreError, open_store

REQUIRED_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "chat:write.customize",
    "reactions:write",
    "users:read",
    "channels:read",
)


@dataclass(frozen=True)
class Check:
    ok: bool
    name: str
    detail: str
    warning: bool = False

    def line(self) -> str:
        mark = "ok  " if self.ok else ("warn" if self.warning else "FAIL")
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
    return checks


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
    url = settings.letta_base_url
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
        return checks
    finally:
        await client.aclose()


async def _database(settings: Settings) -> Check:
    try:
        store = open_store(settings.database_url)
        await store.open()
    except StoreError as exc:
        return Check(False, "database", str(exc))
    try:
        version = await store.schema_version()
        count = len(await store.list_bindings())
        return Check(True, "database", f"{settings.database_url} (schema v{version}, {count} channel bindings)")
    finally:
        await store.close()
