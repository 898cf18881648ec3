"""The settings' values that must never reach a log line: the tokens and keys, and the passwords inside the URLs
(the database's, Letta's, the proxies'), which a traceback or a client's error may repeat."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from bridge.config import Settings
from bridge.proxies import passwords
from bridge.store.database_url import query_passwords


def secrets(settings: Settings) -> list[str]:
    """Values that must never reach a log line, each as written and, for a URL's password, percent-decoded."""
    values = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.letta_api_key,
        settings.metrics_token,
        settings.slack_client_secret,
        settings.slack_state_secret,
        settings.bridge_encryption_key,
    ]
    found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
    for url in (settings.database_url, settings.letta_base_url):  # postgres://user:password@host/db
        password = urlsplit(url).password
        found += [password, unquote(password)] if password else []
        found += query_passwords(url)  # postgres://user@host/db?password=…
    return found + passwords()  # http://user:password@proxy:3128
