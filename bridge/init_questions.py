"""What `python -m bridge init` asks (each question's flag, variable and prompt) and the checks that need no
server: the signing secret's shape and the public URL's."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bridge.config import LETTA_CLOUD_URL
from bridge.config_errors import url_problem
from bridge.manifest import public_url_problem, request_url
from bridge.requirements import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, gap, wrong_kind

DEFAULT_LETTA_URL = "http://localhost:8283"
Verdict = tuple[bool, list[str]]


@dataclass(frozen=True)
class Question:
    key: str  # the config key, and the flag's and environment variable's name
    label: str
    secret: bool = False
    default: str | None = None
    optional: bool = False
    where: str = ""  # where to find the answer, said when it is left empty

    @property
    def help(self) -> str:
        if self.secret:
            return f"or ${self.variable} (better for a secret: a flag shows up in ps)"
        if self.default:  # only the prompt offers it: --non-interactive stops when the value is not given
            return f"or ${self.variable}; needed with --non-interactive (the prompt suggests {self.default})"
        return f"or ${self.variable}"

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def variable(self) -> str:
        return self.key.upper()


BOT_TOKEN = Question("slack_bot_token", "Slack bot token (xoxb-…)", secret=True, where=SLACK_BOT_TOKEN.where)
SIGNING_SECRET = Question("slack_signing_secret", "Slack signing secret", secret=True, where=SLACK_SIGNING_SECRET.where)
# Socket Mode needs none (Slack signs nothing it sends over the WebSocket); one given is checked and written.
SOCKET_SIGNING_SECRET = Question(
    SIGNING_SECRET.key, "Slack signing secret (Enter to skip: Socket Mode needs none)", secret=True, optional=True
)
LETTA_URL = Question(
    "letta_base_url", f"Letta server URL (Letta Cloud is {LETTA_CLOUD_URL})", default=DEFAULT_LETTA_URL
)
LETTA_KEY = Question("letta_api_key", "Letta API key (Enter for none)", secret=True, optional=True)
PUBLIC_URL = Question(
    "bridge_public_url", "Public https URL where Slack reaches this bridge (Enter to fill in later)", optional=True
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for q in (BOT_TOKEN, SIGNING_SECRET, LETTA_URL, LETTA_KEY):
        parser.add_argument(q.flag, help=q.help)
    parser.add_argument(
        "--public-url", dest="bridge_public_url", help="or $BRIDGE_PUBLIC_URL, e.g. https://bridge.example.com"
    )
    parser.add_argument("--config", help="the file to write (default: $BRIDGE_CONFIG or ./config.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file without asking")
    parser.add_argument(
        "--non-interactive", action="store_true", help="never prompt: take flags and environment variables only"
    )


def check_signing_secret(secret: str) -> Verdict:
    if not secret:  # asked as optional only in Socket Mode
        return True, ["     signing secret: not given; Socket Mode needs none (serving over HTTP would)"]
    if wrong_kind(SLACK_SIGNING_SECRET, secret):
        return False, [f"FAIL signing secret: {gap(SLACK_SIGNING_SECRET, secret)}"]
    return True, ["ok   signing secret: set (Slack's first request to the bridge proves it)"]


def check_public_url(url: str) -> Verdict:
    if not url:
        return True, ["     public URL: not given yet; the manifest keeps the example URL"]
    if not url.lower().startswith("https://"):
        return False, [
            "FAIL public URL: Slack calls only https:// URLs: give the bridge's https address (behind a proxy, a "
            "PaaS or a tunnel that serves https), or press Enter and use Socket Mode (README.md)"
        ]
    # Else the manifest's request_url is no URL of the bridge: `https:/slack/events`, `https://host?x=1/slack/events`.
    if problem := url_problem("BRIDGE_PUBLIC_URL", url, ("https",)) or public_url_problem(url):
        return False, [f"FAIL public URL: {problem}"]
    return True, [f"ok   public URL: Slack will call {request_url(url)}"]
