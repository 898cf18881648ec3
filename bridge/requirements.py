"""What a setting is for and where to find it, for the person at the terminal: the lines for settings a mode needs
but does not have (`missing`), and the sentence for a token Slack refused (`slack_refused`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from bridge.config import LETTA_CLOUD_URL, Settings
from bridge.config_file import where_read


@dataclass(frozen=True)
class Requirement:
    variable: str
    purpose: str
    where: str


SLACK_BOT_TOKEN = Requirement(
    "SLACK_BOT_TOKEN",
    "the bot token the bridge posts with (starts with xoxb-)",
    "Slack app settings > OAuth & Permissions > Bot User OAuth Token",
)
SLACK_SIGNING_SECRET = Requirement(
    "SLACK_SIGNING_SECRET",
    "proves that requests to /slack/events come from Slack",
    "Slack app settings > Basic Information > App Credentials > Signing Secret",
)
SLACK_APP_TOKEN = Requirement(
    "SLACK_APP_TOKEN",
    "opens the Socket Mode connection (starts with xapp-)",
    "Slack app settings > Basic Information > App-Level Tokens (scope connections:write)",
)
BRIDGE_ENCRYPTION_KEY = Requirement(
    "BRIDGE_ENCRYPTION_KEY",
    "encrypts each workspace's bot token and Letta key in the database (OAuth mode stores them; without a key it "
    "would store them in the clear, so it does not start)",
    'the output of `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`, '
    "kept in your secret manager (losing it means every workspace installs the app again)",
)
SLACK_CLIENT_SECRET = Requirement(
    "SLACK_CLIENT_SECRET",
    "with SLACK_CLIENT_ID, lets the bridge finish Slack's OAuth install",
    "Slack app settings > Basic Information > App Credentials > Client Secret",
)
SLACK_CLIENT_ID = Requirement(
    "SLACK_CLIENT_ID",
    "with SLACK_CLIENT_SECRET, lets the bridge finish Slack's OAuth install",
    "Slack app settings > Basic Information > App Credentials > Client ID",
)
LETTA_API_KEY = Requirement(
    "LETTA_API_KEY",
    "authenticates the bridge to Letta Cloud",
    "Letta Cloud > API keys (or set LETTA_BASE_URL to your self-hosted server)",
)

# What config.example.toml holds for them: a copy left unedited sets them, but to nothing Slack or Letta accepts.
PLACEHOLDERS = {
    "SLACK_BOT_TOKEN": "xoxb-...",
    "SLACK_SIGNING_SECRET": "...",
    "SLACK_APP_TOKEN": "xapp-...",
    "SLACK_CLIENT_SECRET": "...",
    "LETTA_API_KEY": "...",
}


# Why Slack refuses a token (auth.test, apps.connections.open), for the person at the terminal.
_TOKEN_REFUSALS = {
    "invalid_auth": "the token is wrong, or it was revoked when the app was reinstalled or removed",
    "not_authed": "no token reached Slack",
    "account_inactive": "the app was removed from the workspace, or its bot user was deactivated",
    "token_revoked": "the token was revoked (the app was reinstalled or removed)",
    "token_expired": "the token expired (the app has token rotation on: only OAuth mode renews tokens, see "
    "docs/workspaces.md)",
    "not_allowed_token_type": "it is the wrong kind of token",
}


def token_refused(error: str) -> bool:
    """Whether Slack's error is about the token itself (a wrong, revoked or wrong kind of token), not Slack's own
    trouble or a limit."""
    return error in _TOKEN_REFUSALS


# Slack's own trouble or a limit, said for a call that checks a token: no fault of the token.
_SLACK_TROUBLE = {"service_unavailable", "ratelimited", "rate_limited", "internal_error", "fatal_error",
                  "request_timeout", "unknown"}


def slack_refused(requirement: Requirement, error: str) -> str:
    """What the person at the terminal reads when Slack refuses a token: what failed, the likely cause, the fix;
    or, when Slack is in trouble or limits the app, that the token could not be checked, and to try again."""
    if error in _SLACK_TROUBLE or error.startswith("http_"):
        wait = "after the wait Slack asked for (a minute or so)" if "rate" in error else "in a minute"
        return (
            f"Slack could not check {requirement.variable} just now ({error}): Slack is having trouble or limits "
            f"this app's calls, which says nothing against the token. Try again {wait}; https://slack-status.com "
            "says whether Slack is having trouble."
        )
    why = _TOKEN_REFUSALS.get(error, "Slack gave no more detail")
    return (
        f"Slack refused {requirement.variable} ({error}): {why}. Copy the current token from {requirement.where} "
        "and set it again."
    )


def _given(settings: Settings, r: Requirement) -> str | None:
    value = getattr(settings, r.variable.lower())
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _unusable(settings: Settings, r: Requirement) -> bool:
    value = _given(settings, r)
    return value in (None, PLACEHOLDERS.get(r.variable)) or wrong_kind(r, value) is not None


def missing(settings: Settings, mode: Literal["serve", "socket", "slack", "letta"]) -> list[str]:
    """Plain-words lines for each setting `mode` needs but does not have, or has as the example's placeholder."""

    def given(r: Requirement) -> str | None:
        return _given(settings, r)

    def unusable(r: Requirement) -> bool:
        return _unusable(settings, r)

    needed: list[Requirement] = []
    if settings.slack_client_id is not None or settings.slack_client_secret is not None:
        needed += [r for r in (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET) if unusable(r)]
    if settings.oauth:
        if mode in ("serve", "socket") and settings.bridge_encryption_key is None:
            needed.append(BRIDGE_ENCRYPTION_KEY)
    elif mode in ("serve", "socket", "slack"):
        if unusable(SLACK_BOT_TOKEN):
            needed.append(SLACK_BOT_TOKEN)
    if mode == "serve" and unusable(SLACK_SIGNING_SECRET):
        needed.append(SLACK_SIGNING_SECRET)
    if mode == "socket" and unusable(SLACK_APP_TOKEN):
        needed.append(SLACK_APP_TOKEN)
    # In OAuth mode each workspace may set its own Letta (/letta setup): the environment's is only the default.
    if mode in ("serve", "socket", "letta") and settings.letta_base_url == LETTA_CLOUD_URL and not settings.oauth:
        if unusable(LETTA_API_KEY):
            needed.append(LETTA_API_KEY)
    return [gap(r, given(r)) for r in needed]


# A bot token without a signing secret is how `init` leaves a Socket Mode set-up, whose app token it never writes:
# in a shell where that token is not exported, the way forward is to export it, not init (which would then ask for
# the signing secret).
_SOCKET_MODE_HINT = (
    "For Socket Mode, which needs no signing secret: export SLACK_APP_TOKEN (the xapp- token) and run "
    "`python -m bridge socket`."
)


def set_them_up(settings: Settings, mode: Literal["serve", "socket", "slack", "letta"] = "serve") -> str:
    """What to do about the lines `missing` gave, and which config file was read (if any)."""
    return f"{_what_to_do(settings, mode)} {where_read()}"


def _what_to_do(settings: Settings, mode: Literal["serve", "socket", "slack", "letta"]) -> str:
    """`init` sets up one bot token, never Socket Mode's app-level token (a bot token without a signing secret may
    be a Socket Mode set-up missing it); OAuth mode's settings are for docs/workspaces.md to explain."""
    if settings.slack_client_id is not None or settings.slack_client_secret is not None:
        return (
            "OAuth mode: set them in the environment or in config.toml, as docs/workspaces.md (Turning it on) "
            "describes; `python -m bridge init` sets up a single bot token only."
        )
    run_init = (
        "Run `python -m bridge init` to set them up step by step, or set them in the environment or in "
        "config.toml (see config.example.toml and README.md)."
    )
    signed = not _unusable(settings, SLACK_SIGNING_SECRET)
    if mode == "serve" and not signed and not _unusable(settings, SLACK_APP_TOKEN):
        socket = "SLACK_APP_TOKEN is set: for Socket Mode run `python -m bridge socket`, which needs no signing secret."
        return f"{run_init} {socket}"
    if mode == "serve" and not signed and settings.slack_app_token is None and not _unusable(settings, SLACK_BOT_TOKEN):
        return f"{run_init} {_SOCKET_MODE_HINT}"  # set up as init leaves Socket Mode, the app token not exported
    if mode != "socket" or not _unusable(settings, SLACK_APP_TOKEN):
        return run_init
    by_hand = (
        "`python -m bridge init` does not ask for SLACK_APP_TOKEN: set it in the environment "
        '(export SLACK_APP_TOKEN=xapp-…) or in config.toml (slack_app_token = "xapp-…"); README.md (Socket Mode) '
        "says how to create it."
    )
    return by_hand if len(missing(settings, mode)) == 1 else f"{run_init} {by_hand}"


# How each kind of Slack token starts; a value pasted into the wrong setting is named by its kind.
TOKEN_KINDS = (
    ("xoxe.xoxb-", "a bot token"),
    ("xoxb-", "a bot token"),
    ("xapp-", "an app-level token"),
    ("xoxp-", "a user token"),
    ("xoxe-", "a refresh token"),
)
# The kinds a setting takes (a rotating bot token starts with xoxe.xoxb-); the signing secret is no token at all.
_KINDS_TAKEN = {"SLACK_BOT_TOKEN": ("xoxe.xoxb-", "xoxb-"), "SLACK_APP_TOKEN": ("xapp-",), "SLACK_SIGNING_SECRET": ()}


def wrong_kind(r: Requirement, value: str | None) -> str | None:
    """Why `value` cannot be `r`'s, by its kind alone (the value itself is never repeated), or None."""
    taken = _KINDS_TAKEN.get(r.variable)
    if taken is None or value is None:
        return None
    value = value.strip()
    if taken and value.startswith(taken):
        return None
    kind = next(((prefix, name) for prefix, name in TOKEN_KINDS if value.startswith(prefix)), None)
    if kind is None:
        return None if not taken else f"{r.variable} is not a Slack token"
    return f"{r.variable} is {kind[1]} ({kind[0]}…)"


def wrong_kinds(settings: Settings) -> list[str]:
    """A line for each Slack secret that is set but holds another kind of value (a token in the wrong setting)."""
    lines = []
    for r in (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN):
        value = getattr(settings, r.variable.lower())
        if value is not None and wrong_kind(r, value.get_secret_value()) is not None:
            lines.append(gap(r, value.get_secret_value()))
    return lines


def gap(r: Requirement, value: str | None) -> str:
    if value is None:
        return f"missing {r.variable}: {r.purpose}. Find it in {r.where}."
    if (kind := wrong_kind(r, value)) is not None:
        return f"{kind}, not the one it needs: {r.purpose}. Find it in {r.where}."
    return (
        f'{r.variable} is still the example\'s placeholder "{value}" (config.example.toml): {r.purpose}. '
        f"Find it in {r.where}."
    )
