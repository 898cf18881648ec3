"""Pure: whether a link's label names an address (a URL, a domain, an email) other than where the link goes.

Agents read text others wrote, so a prompt injection can ask for `[paypal.com](https://evil…)`. Any word that reads
as a domain counts, in any script and with the dots a reader takes for one; hosts are compared as markdown-it writes
a link's (IDNA), so an honest link to `münchen.de` is not taken for a disguised one.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from bridge.slack.decide import INVISIBLE

# What in a link's label names an address: a URL, a www. host, an email, or any `name.tld` word, in any script and
# with the dots a reader takes for one (`paypal．com`); only a word ending in a common file extension (README.md,
# app.py) is not a domain. Better the real address shown beside an honest label than a disguised link.
_DOT = "[.\uff0e\u3002\uff61\u2024]"
_FILE = "md|py|js|ts|tsx|jsx|txt|json|toml|yaml|yml|csv|html|htm|css|log|png|jpg|jpeg|gif|svg|pdf|go|java"
_ADDRESS = re.compile(
    rf"(?i)(?<![\w+.-])(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>]+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:{_DOT}[\w-]+)+"
    rf"|(?<![\w-])(?<![\w-]{_DOT})(?:[\w-]+{_DOT})+(?!(?:{_FILE})(?![\w-]))(?:[^\W\d_]{{2,}}|xn--[a-z0-9-]+)"
    rf"(?![\w-]|{_DOT}[\w-])(?:[/:?#][^\s<>]*)?"
)


def _host(address: str) -> str:
    """An address's host (lower case, ASCII as in a link's URL, without `www.`), or an email's whole address."""
    address = re.sub(_DOT, ".", unicodedata.normalize("NFKC", address))
    if "://" not in address and "@" in address.split("/", 1)[0]:
        user, _, domain = address.lower().removeprefix("mailto:").split("?", 1)[0].rpartition("@")
        return f"{user}@{_ascii(domain)}"
    try:
        host = urlsplit(address if "://" in address else "http://" + address).hostname or ""
    except ValueError:
        return ""
    return _ascii(host).removeprefix("www.")


def _ascii(host: str) -> str:
    """A host as markdown-it writes a link's (IDNA, lower case, no final dot): `münchen.de` is `xn--mnchen-3ya.de`."""
    host = host.lower().rstrip(".")
    try:
        return host.encode("idna").decode()
    except UnicodeError:
        return ".".join(p if p.isascii() else "xn--" + p.encode("punycode").decode() for p in host.split("."))


def names_address(label: str) -> bool:
    """Whether a link's label names an address (a URL, a host, an email): it may disguise where the link goes.
    Read without invisible characters, which Slack shows as nothing (`paypal\u200b.com` reads as paypal.com)."""
    return _ADDRESS.search(INVISIBLE.sub("", label)) is not None


def disguised(url: str, label: str) -> bool:
    """Whether the label names an address other than where the link goes."""
    target = _host(url)
    return any(_host(found) != target for found in _ADDRESS.findall(INVISIBLE.sub("", label)))
