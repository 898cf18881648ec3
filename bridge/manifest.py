"""The Slack app manifest, rendered for a public URL and a slash command name.

`slack-app-manifest.yaml` in the repository is this text for the example URL (a test keeps the two equal);
`python -m bridge init` prints it with the operator's URL filled in; `check` judges a token's scopes by SCOPES.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

EXAMPLE_URL = "https://bridge.example.com"
EVENTS_PATH = "/slack/events"


@dataclass(frozen=True)
class Scope:
    """A bot scope the manifest asks for; `check` fails without a required one and warns without an optional one
    (`without` says what the bridge does then)."""

    name: str
    purpose: str
    without: str = ""

    @property
    def optional(self) -> bool:
        return bool(self.without)


SCOPES = (
    Scope("app_mentions:read", "app_mention events: the @mention that starts a turn"),
    Scope("channels:history", "message.channels events (public channels)"),
    Scope("groups:history", "message.groups events (private channels)"),
    Scope("im:history", "message.im events (direct messages)"),
    Scope(
        "mpim:history",
        "receive message.mpim events (group DMs: follow-ups in the bot's threads) and read those threads",
        without="in group DMs only @mentions reach the agents (no follow-ups without one, no earlier thread messages)",
    ),
    Scope("channels:read", "conversations.info: the channel name in the agents' context, its creator"),
    Scope("groups:read", "conversations.info on private channels"),
    Scope("chat:write", "post the agents' replies and the slash command's notices"),
    Scope(
        "chat:write.customize",
        "post each reply under its agent's name",
        without="each reply is posted under the bot's name and starts with the agent's name in bold",
    ),
    Scope("reactions:write", "the :eyes: / done mark on the mention"),
    Scope("users:read", "users.info: the speaker's display name; who is an admin (the slash command)"),
    Scope(
        "files:read",
        "fetch the images and text files shared with a mention for the agents",
        without="shared files are only named to the agents (name, type, size, link), never fetched",
    ),
    Scope("commands", "the slash command"),
    Scope(
        "assistant:write",
        "show agent sessions: Slack's own working state and Stop button on every turn "
        "(declaring the app an agent adds it)",
        without="turns show the :eyes: reaction, the status line and a Stop button for the person who asked instead",
    ),
)

_EXAMPLE_HEADER = """\
# Slack app manifest for letta-slack-bridge.
# Create the app at https://api.slack.com/apps -> "Create New App" -> "From a manifest", paste this file,
# and replace {example} with the public URL of `python -m bridge serve`
# (all three URLs point at the same endpoint: {path}). `python -m bridge init` prints it filled in.
"""
_FILLED_HEADER = """\
# Slack app manifest for letta-slack-bridge, with the bridge's public URL filled in.
# Create the app at https://api.slack.com/apps -> "Create New App" -> "From a manifest" and paste this text
# as it is (all three URLs point at the bridge's endpoint, {path}).
"""

_TEMPLATE = """\
{header}#
# Socket Mode instead (local use, no public URL): set settings.socket_mode_enabled to true, delete the three
# url/request_url lines, create an app-level token with the connections:write scope (Basic Information ->
# App-Level Tokens) and run `python -m bridge socket` with SLACK_APP_TOKEN set.
_metadata:
  major_version: 1
  minor_version: 1
display_information:
  name: Letta Bridge
  description: Talk to a Letta multi-agent group from Slack; every agent answers in the thread.
  background_color: "#2c2d30"
features:
  app_home:
    home_tab_enabled: false
    messages_tab_enabled: true              # direct messages to the bot go to DEFAULT_TARGET
    messages_tab_read_only_enabled: false
  bot_user:
    display_name: letta
    always_online: true
  assistant_view:                           # declares the app an agent: sessions, Stop, the DM agent view
    assistant_description: Letta agents answer here; each turn shows its progress and a Stop button.
  slash_commands:
    - command: {command}
      url: {url}
      description: Connect this channel to a Letta group, or see how it is connected
      usage_hint: "connect [group-id | agent-ids] | disconnect | status | stop | groups | agents | help"
      should_escape: false
oauth_config:
  scopes:
    bot:
{scopes}
settings:
  event_subscriptions:
    request_url: {url}
    bot_events:
      - app_mention
      - message.channels
      - message.groups
      - message.im
      - message.mpim                        # group DMs: follow-ups in the bot's threads (scope mpim:history)
      - agent_session_stopped               # a person pressed a session's Stop button
      - assistant_thread_started            # a DM thread opened in the agent view: suggested prompts
      - app_uninstalled                     # the app was removed: its tokens no longer work
      - tokens_revoked                      # the same, for one token
      - channel_id_changed                  # a private channel shared through Slack Connect got a new id
  interactivity:                            # the {command} menu, Stop and feedback buttons, on the same endpoint
    is_enabled: true
    request_url: {url}
  org_deploy_enabled: false
  socket_mode_enabled: false
  token_rotation_enabled: false
"""


def request_url(public_url: str) -> str:
    """`https://x.example` (with or without a trailing slash or the events path) -> its events endpoint."""
    base = public_url.strip().rstrip("/")
    base = base.removesuffix(EVENTS_PATH)
    return base + EVENTS_PATH


def public_url_problem(url: str) -> str | None:
    """Why an https URL cannot be the base of request_url (None when it can): the events path is appended to it, so
    it would land inside a query or fragment, and Slack sends no user or password and calls no port 0."""
    parts = urlsplit(url.strip())
    base = f"https://{parts.netloc.rpartition('@')[2]}{parts.path}"
    if "?" in url or "#" in url:
        return f"give it without `?…` or `#…`: Slack calls {request_url(base)}"
    if "@" in parts.netloc:  # the password is not repeated
        return f"give it without a user or password before @: Slack sends none, and calls {request_url(base)}"
    if parts.port == 0:
        return "it has port 0, which is not a port (1 to 65535): give the port Slack reaches, or none for 443"
    return None


def manifest(public_url: str = EXAMPLE_URL, command: str = "/letta") -> str:
    url = request_url(public_url)
    if url == request_url(EXAMPLE_URL):
        header = _EXAMPLE_HEADER.format(example=EXAMPLE_URL, path=EVENTS_PATH)
    else:
        header = _FILLED_HEADER.format(path=EVENTS_PATH)
    scopes = "\n".join(f"      - {s.name:<24}# {s.purpose}" for s in SCOPES)
    return _TEMPLATE.format(header=header, url=url, command=command, scopes=scopes)
